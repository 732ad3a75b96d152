"""Presentation helpers shared by the app's pages: session state and caches, figures, error guard,
and the streamlit-free pieces that turn m2ae's results into what a page shows (``samples``,
``windows``, ``reconstruction``, ``predictions``, ``selection``, ``tables``).

Results themselves (model outputs, neighbours, metrics) come from m2ae; the streamlit-free modules
here are unit-tested without a browser (tests/test_app_support.py).
"""
