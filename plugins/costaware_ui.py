"""The Costaware page in Airflow's UI: registration only (the logic is costaware.app.ui).

* ``fastapi_apps``: the page, its JSON and the run reports under ``/costaware`` (every route
  requires Airflow's login);
* ``external_views``: "Costaware" in the UI's navigation, the page embedded at
  ``/plugin/costaware``;
* ``global_operator_extra_links``: "Costaware report" on each retrain run's checkpoint task.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from costaware.app.ui.app import create_app
from costaware.app.ui.links import CostawareReportLink
from costaware.app.ui.page import PREFIX


class CostawarePlugin(AirflowPlugin):
    name = "costaware"
    fastapi_apps = [{"app": create_app(), "url_prefix": PREFIX, "name": "Costaware"}]
    external_views = [
        {
            "name": "Costaware",
            "href": f"{PREFIX}/",
            "url_route": "costaware",
            "destination": "nav",
            "category": "browse",
        }
    ]
    global_operator_extra_links = [CostawareReportLink()]
