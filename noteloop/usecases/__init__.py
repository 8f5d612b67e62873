"""The use cases the screen, the command line and the worker share: training, evaluating
and serving a project's model (``modeling``), import and export (``import_export``,
``uploads``), the demo project (``demo``), corpora from disk and the experiments on them
(``corpora``, ``experiments``) and the offline report (``reports``)."""
