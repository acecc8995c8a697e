"""``parcours bench``: the whole pipeline and its peers (pandas, Polars, bare DuckDB) timed side by side."""
