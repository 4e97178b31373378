"""One base model, many named adapters, mixed in one batch (S-LoRA for SloBench).

* :mod:`slopeft.serving.layers`: the shared base model's layers learn to apply a different
  adapter to each contiguous block of rows of the batch in flight (:class:`~slopeft.serving.layers.RowPlan`);
  the base computation (every GEMM, attention, LayerNorm) runs once for the whole batch.
* :mod:`slopeft.serving.adapters`: loading an adapter around the shared base without copying its
  weights, deciding how it is served (mixed into shared batches, or grouped per adapter) and
  checking that the mixed path gives what the adapter's own model gives.
* :mod:`slopeft.serving.engine`: the scheduler thread: it gathers requests for different adapters
  into one batch (``max_batch``, ``max_wait_ms``), runs it, and answers each request.
* :mod:`slopeft.serving.api`: the FastAPI app (``/v1/predict``, OpenAI-compatible
  ``/v1/completions`` and ``/v1/chat/completions``, ``/v1/models``, ``/v1/adapters``,
  ``/healthz``, ``/metrics``); :mod:`slopeft.serving.cli` is ``slopeft serve``.
"""
