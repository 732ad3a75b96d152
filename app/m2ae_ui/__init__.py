"""Presentation helpers shared by the app's pages: session state and caches, figures, error guard.

Nothing here computes results: that is m2ae's (and ``m2ae.app_support``'s) job.
"""
