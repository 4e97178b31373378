"""Metric functions ``(predictions, references) -> scores``, each reproducing the official SloBench evaluator.

Pure: they import nothing of slopeft but its errors, so tasks (and anything above them) can use them.
``classification`` serves the SuperGLUE and SI-NLI boards, ``mt`` the two translation boards.
"""
