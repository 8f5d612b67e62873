"""The screen: the Streamlit app (``app.py``), its pages (``views/``), the annotator widget
(``components/``), the annotate flow behind the Annotate page, and the Dashboard's charts.
It reads and writes through storage and the use cases, and never loads a model."""
