"""Two engines for one EM, and the choice between them.

``numpy``  on the host, in float64 NumPy: small data, nothing to compile
``jax``    compiled: ``lax.while_loop``, vmapped restarts, chunks, ``shard_map``, streams
``choose`` which engine runs a piece of work, at what padded size: every threshold

Both engines implement the same functions with the same arguments and results
(``fit``, ``fit_restarts``, ``lloyd_batch``, ``log_resp``, ``criteria_terms``), and
return :class:`bayesgmm.engines.jax.FitInfo`-shaped reports.
"""
