"""Stage 2, inputs: what records are (their fields and which SLO reads which), request bodies
turned into Arrow, batches validated for the store, and the files, globs and engines a scan
reads."""
