"""Pure metric functions, checked against the official SloBench evaluator."""
