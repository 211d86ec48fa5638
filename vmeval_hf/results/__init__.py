"""The results dataset: an experiment's evaluations compiled to Parquet + a leaderboard card,
published as a tagged revision of its own Hub repo, mirrored to S3 and logged (``kind: results``).

    scan         read and check the evaluation files (both upstream layouts) and the videos they score
    questions    the question version the results refer to
    leaderboard  the numbers; heatmap: the picture; card: the dataset card
    build        the release folder (the question release's format); publish: Hub -> S3 -> verify -> log

The public functions are re-exported lazily by :mod:`vmeval_hf`: ``validate_results``,
``build_results``, ``publish_results``, ``show_results``.
"""
