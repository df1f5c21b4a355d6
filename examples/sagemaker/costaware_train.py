"""SageMaker script-mode entry point for ``training.sagemaker.script``: costaware's trainer.

Pack this file into the tarball named by ``training.sagemaker.source`` (``tar czf
src.tar.gz costaware_train.py``, upload it to S3); the ``image`` must have costaware and
SageMaker's training toolkit (``sagemaker-training``) installed. README: "Training on cloud
spot capacity".
"""

from costaware.models.training.sagemaker_container import main

if __name__ == "__main__":
    main()
