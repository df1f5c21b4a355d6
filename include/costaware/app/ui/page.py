"""The Costaware page as HTML: server-rendered tables and SVG charts, a little inline script
for the actions (which call Airflow's own REST API with the logged-in user's session).

Every value that can come from data, configs or a person (batch names, reasons, tags, actor
names) is escaped; the script reads the model name from a data attribute, never from text
pasted into code.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable
from urllib.parse import quote

from costaware.app.ui.data import REPORT_FILES, ModelView, Run
from costaware.app.ui.svg import Series, line_chart, stacked_bars
from costaware.config import METRIC_SPECS
from costaware.costs.base import Spend

PREFIX = "/costaware"  # where the plugin's FastAPI app is mounted (plugins/costaware_ui.py)

_CSS = """body{font:14px system-ui,sans-serif;margin:1.2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}table{border-collapse:collapse;
margin:.4em 0 1em;font-size:13px}td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;
vertical-align:top}th{background:#f4f4f4}.retrain,.promote,.promoted{color:#07875a}
.skip,.skipped{color:#666}.approve{color:#b86e00}.quarantined,.rejected,.reject,.rollback{
color:#c0392b}.card{display:inline-block;border:1px solid #ddd;border-radius:6px;padding:.6em
1em;margin:0 1em .6em 0;vertical-align:top}.card b{font-size:1.3em}
.charts figure{display:inline-block;margin:0 1em 1em 0}figcaption{font-weight:600;font-size:13px}
form{display:inline-block;border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:0 1em
 .6em 0;vertical-align:top}label{display:block;margin:.2em 0}.msg{white-space:pre-wrap;
font-family:monospace;font-size:12px}.error{color:#c0392b}.ok{color:#07875a}.empty{color:#888}"""

_CLASSES = frozenset(
    {"retrain", "skip", "approve", "quarantined", "promoted", "rejected", "skipped", "promote"}
    | {"reject", "rollback"}
)


def _e(value: object) -> str:
    return html.escape("—" if value is None else str(value), quote=True)


def _cls(value: str) -> str:
    return value if value in _CLASSES else ""


def _when(value: dt.datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M")


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    return "—" if value is None else fmt.format(value)


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def _spend(s: Spend) -> str:
    return "$0" if s.count == 0 else s.text()


def report_url(model: str, batch: str, name: str) -> str:
    return f"{PREFIX}/reports/{quote(model)}/{quote(batch)}/{quote(name)}"


def _report_links(view: ModelView, run: Run) -> str:
    if not run.batch_id:
        return "—"
    return " ".join(
        f"<a href='{_e(report_url(view.model, run.batch_id, n))}' "
        f"data-report='{_e(n)}'>{_e(REPORT_FILES[n])}</a>"
        for n in run.report_files
    )


def _table(head: Iterable[str], rows: Iterable[Iterable[str]], cls: str = "") -> str:
    h = "".join(f"<th>{_e(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class='{cls}'><tr>{h}</tr>{body}</table>"


def _shown(view: ModelView, points: float | None) -> float | None:
    """A champion's metric as people read it (an RMSE of 12.3, not −12.3 points)."""
    spec = METRIC_SPECS.get(view.metric or "")
    return points if points is None or spec is None else spec.shown(points)


def _reading(view: ModelView) -> str:
    spec = METRIC_SPECS.get(view.metric or "")
    return f"{view.metric or 'metric'} ({spec.reading})" if spec else "metric (points)"


def _champion(view: ModelView) -> str:
    c = view.champion
    if c is None:
        return "<div class='card' id='champion'>Champion: <b>none yet</b></div>"
    metric = (
        f"{_e(view.metric or 'metric')} {_num(_shown(view, c.points))}"
        if c.points is not None
        else "—"
    )
    return (
        f"<div class='card' id='champion'>Champion <b>v{_e(c.version)}</b><br>"
        f"since {_e(_when(c.since))} ({_e(c.how)}, run clock)<br>{metric} when promoted</div>"
    )


def _timeline(view: ModelView) -> str:
    rows = []
    for r in reversed(view.runs):  # newest first
        rows.append(
            [
                _e(_when(r.when)),
                _e(r.batch_id),
                f"<span class='{_cls(r.action)}'>{_e(r.action)}</span>",
                f"<span class='{_cls(r.outcome)}'>{_e(r.outcome)}</span>",
                _e(r.reason),
                _e(_num(r.expected_gain)),
                _e(_usd(r.expected_usd) if r.expected_usd is not None else "—"),
                _e(_spend(r.actual)),
                _e(_usd(r.budget_left) if r.budget_left is not None else "—"),
                _report_links(view, r),
            ]
        )
    head = [
        "data time",
        "batch",
        "decision",
        "outcome",
        "why",
        f"expected gain (pt·batch of {view.metric or 'the metric'})",
        "expected $",
        "actual $",
        "budget left",
        "reports",
    ]
    return _table(head, rows, "timeline")


def _history(view: ModelView) -> str:
    rows = [
        [
            _e(_when(h.when)),
            f"<span class='{_cls(h.action)}'>{_e(h.action)}</span>",
            _e(h.status),
            _e(f"v{h.from_version}" if h.from_version else "none"),
            _e(f"v{h.to_version}" if h.to_version else "none"),
            _e(_num(_shown(view, h.points))),
            _e(h.actor),
            _e(h.reason),
        ]
        for h in reversed(view.history)
    ]
    head = ["when", "action", "status", "from", "to", "metric", "by", "why"]
    return _table(head, rows, "history") if rows else "<p class='empty'>No promotions yet.</p>"


def _day(run: Run) -> str:
    return run.when.strftime("%Y-%m-%d") if run.when else (run.batch_id or "?")


def _charts(view: ModelView) -> str:
    labels = [_day(r) for r in view.runs]
    metric = line_chart(
        f"Champion {_reading(view)} on the newest labelled batch",
        labels,
        [Series("champion", [_shown(view, r.champion_points) for r in view.runs])],
    )
    coverage = line_chart(
        "Label coverage (labelled rows / rows accepted so far, %)",
        labels,
        [
            Series(
                "coverage",
                [None if r.label_coverage is None else 100 * r.label_coverage for r in view.runs],
            )
        ],
    )
    drift = line_chart(
        "Drift score per feature",
        labels,
        [Series(f, [r.drift.get(f) for r in view.runs]) for f in view.features],
    )
    retrains = [r for r in view.runs if r.realized_gain is not None or r.action == "retrain"]
    gains = line_chart(
        "Expected vs realized gain per retrain (points)",
        [_day(r) for r in retrains],
        [
            Series("expected", [r.expected_gain for r in retrains]),
            Series("realized", [r.realized_gain for r in retrains], dashed=True),
        ],
    )
    tags = sorted({t for m in view.months for t in m.by_tag})
    spend = stacked_bars(
        f"Retraining spend per month by {view.tag_key} (known $)",
        [m.month for m in view.months],
        {t: [m.by_tag[t].known_usd if t in m.by_tag else 0.0 for m in view.months] for t in tags},
    )
    return f"<div class='charts'>{metric}{coverage}{drift}{gains}{spend}</div>"


def _spend_table(view: ModelView) -> str:
    rows = [
        [
            _e(m.month),
            *(_e(_spend(m.by_tag[t]) if t in m.by_tag else "$0") for t in _tags(view)),
            _e(_spend(m.total)),
            _e("—" if m.spot_savings is None else f"${m.spot_savings:.4f}"),
        ]
        for m in view.months
    ]
    head = ["month", *(f"{view.tag_key}={t}" for t in _tags(view)), "total", "spot savings"]
    return _table(head, rows, "spend") if rows else "<p class='empty'>No spend yet.</p>"


def _tags(view: ModelView) -> list[str]:
    return sorted({t for m in view.months for t in m.by_tag})


def _actions(model: str) -> str:
    return f"""
<form id='trigger'><b>Run retrain_{_e(model)}</b>
<label><input type='checkbox' name='force'> force (retrain whatever the checkpoint says)</label>
<label><input type='checkbox' name='dry_run'> dry run (decide, do not train)</label>
<label>max $ per pt·batch <input name='max_usd_per_point_batch' size='8'></label>
<label>batch <input name='batch' size='18' placeholder='oldest waiting'></label>
<button type='submit'>Trigger</button><div class='msg' id='trigger-msg'></div></form>
<form id='rollback'><b>Roll back (rollback_{_e(model)})</b>
<label>target version <input name='target_version' size='5' placeholder='previous'></label>
<label>reason <input name='reason' size='24'></label>
<button type='submit'>Roll back</button><div class='msg' id='rollback-msg'></div></form>
<div class='card' id='approvals'><b>Waiting for approval</b><div id='approvals-list'
class='empty'>checking…</div><div class='msg' id='approvals-msg'></div></div>"""


_SCRIPT = """
const root = document.getElementById('costaware');
const model = root.dataset.model;
async function api(method, path, body) {
  const r = await fetch('/api/v2' + path, {method, credentials: 'same-origin',
    headers: {'Content-Type': 'application/json'}, body: body && JSON.stringify(body)});
  let data = null; try { data = await r.json(); } catch (e) {}
  return {ok: r.ok, status: r.status, data};
}
function say(id, res, okText) {
  const el = document.getElementById(id);
  el.className = 'msg ' + (res.ok ? 'ok' : 'error');
  const detail = res.data && res.data.detail;
  el.textContent = res.ok ? okText : 'Refused by Airflow (' + res.status + '): ' +
    (typeof detail === 'string' ? detail : JSON.stringify(detail));
}
async function watch(dagId, runId, id) {
  const el = document.getElementById(id);
  for (;;) {
    const res = await api('GET', `/dags/${dagId}/dagRuns/${encodeURIComponent(runId)}`);
    const state = res.ok ? res.data.state : 'unknown (' + res.status + ')';
    el.dataset.state = state;
    el.textContent = `run ${runId}: ${state}`;
    if (['success', 'failed'].includes(state) || !res.ok) {
      if (res.ok) { el.textContent += ' — reload the page to see its decision'; }
      return;
    }
    if (state === 'queued' || state === 'running') { loadApprovals(); }
    await new Promise(r => setTimeout(r, 3000));
  }
}
document.getElementById('trigger').addEventListener('submit', async ev => {
  ev.preventDefault();
  const f = ev.target, conf = {force: f.force.checked, dry_run: f.dry_run.checked};
  const m = f.max_usd_per_point_batch.value.trim();
  if (m !== '') { conf.max_usd_per_point_batch = isNaN(Number(m)) ? m : Number(m); }
  if (f.batch.value.trim() !== '') { conf.batch = f.batch.value.trim(); }
  const res = await api('POST', `/dags/retrain_${model}/dagRuns`, {logical_date: null, conf});
  say('trigger-msg', res, res.ok ? 'triggered ' + res.data.dag_run_id : '');
  if (res.ok) { watch(`retrain_${model}`, res.data.dag_run_id, 'trigger-msg'); }
});
document.getElementById('rollback').addEventListener('submit', async ev => {
  ev.preventDefault();
  const f = ev.target, conf = {reason: f.reason.value};
  if (f.target_version.value.trim() !== '') { conf.target_version = f.target_version.value.trim(); }
  const res = await api('POST', `/dags/rollback_${model}/dagRuns`, {logical_date: null, conf});
  say('rollback-msg', res, res.ok ? 'triggered ' + res.data.dag_run_id : '');
  if (res.ok) { watch(`rollback_${model}`, res.data.dag_run_id, 'rollback-msg'); }
});
async function answer(d, choice) {
  const ti = d.task_instance;
  const res = await api('PATCH', `/dags/${ti.dag_id}/dagRuns/${encodeURIComponent(ti.dag_run_id)}` +
    `/taskInstances/${ti.task_id}/${ti.map_index}/hitlDetails`,
    {chosen_options: [choice], params_input: {}});
  say('approvals-msg', res, choice + ' sent for ' + ti.dag_run_id);
  loadApprovals();
}
async function loadApprovals() {
  const list = document.getElementById('approvals-list');
  const res = await api('GET',
    `/dags/retrain_${model}/dagRuns/~/hitlDetails?response_received=false`);
  if (!res.ok) { list.textContent = 'cannot read approvals (' + res.status + ')'; return; }
  const open = res.data.hitl_details.filter(d => d.task_instance.state === 'awaiting_input');
  list.replaceChildren();
  list.className = open.length ? '' : 'empty';
  if (!open.length) { list.textContent = 'none'; }
  for (const d of open) {
    const row = document.createElement('div');
    row.className = 'approval';
    const text = document.createElement('div');
    text.textContent = d.task_instance.dag_run_id + ': ' + d.body;
    row.append(text);
    for (const choice of d.options) {
      const b = document.createElement('button');
      b.textContent = choice;
      b.type = 'button';
      b.addEventListener('click', () => answer(d, choice));
      row.append(b);
    }
    list.append(row);
  }
}
loadApprovals();
"""


def model_page(view: ModelView, models: list[str]) -> str:
    nav = " · ".join(
        f"<a href='{_e(PREFIX)}/models/{_e(quote(m))}'>{_e(m)}</a>"
        if m != view.model
        else f"<b>{_e(m)}</b>"
        for m in models
    )
    retrains = sum(r.outcome in ("promoted", "rejected") for r in view.runs)  # trained
    spent = Spend()
    for m in view.months:
        spent = spent + m.total
    body = f"""<div id='costaware' data-model='{_e(view.model)}'>
<h1>Costaware — {_e(view.model)}</h1><p>models: {nav}</p>
{_champion(view)}<div class='card'>runs <b>{len(view.runs)}</b><br>retrained {retrains}
</div><div class='card'>retraining spend<br><b>{_e(_spend(spent))}</b></div>
<h2>Actions (through Airflow, as you)</h2>{_actions(view.model)}
<h2>Decision timeline</h2>{_timeline(view)}
<h2>Trends</h2>{_charts(view)}
<h2>Champion history</h2>{_history(view)}
<h2>Spend per month</h2>{_spend_table(view)}
<p class='empty'>Spot savings: what each spot attempt saved against the on-demand list price of
its instance type for the same runtime (static price table). Label coverage: labelled rows the
run measured on / rows accepted up to its batch.</p></div>"""
    return _doc(f"Costaware — {view.model}", body, script=True)


def index_page(models: list[str]) -> str:
    items = "".join(
        f"<li><a href='{_e(PREFIX)}/models/{_e(quote(m))}'>{_e(m)}</a></li>" for m in models
    )
    body = f"<h1>Costaware</h1><p>Models:</p><ul>{items or '<li>none configured</li>'}</ul>"
    return _doc("Costaware", body, script=False)


def _doc(title: str, body: str, script: bool) -> str:
    js = f"<script>{_SCRIPT}</script>" if script else ""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<style>{_CSS}</style></head><body>{body}{js}</body></html>"
    )
