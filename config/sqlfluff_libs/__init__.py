"""What Mailroom's macros take from dbt's Jinja context beyond sqlfluff's dbt builtins (ref, source, var,
config, return), for sqlfluff's jinja templater (`.sqlfluff` loads this package as its library_path).

A model renders as dbt compiles it for DuckDB at parse time: `adapter.dispatch` picks the duckdb__
variant of a macro (else its default__), `env_var` gives its default and `execute` is false (no query).
"""

from jinja2 import pass_context
from jinja2.utils import missing

# The engine whose macro variants are linted; the same as `dialect` in .sqlfluff.
ENGINE = "duckdb"

execute = False


def env_var(name, default=""):
    return default


class _Adapter:
    # sqlfluff renders in Jinja's sandbox, which calls only objects that declare themselves safe.
    unsafe_callable = False
    alters_data = False

    @pass_context
    def dispatch(self, context, macro_name, macro_namespace=None):
        for prefix in (f"{ENGINE}__", "default__"):
            macro = context.resolve_or_missing(prefix + macro_name)
            if macro is not missing:
                return macro
        raise LookupError(f"no {ENGINE}__{macro_name} or default__{macro_name} macro in dbt/macros")

    def type(self):
        return ENGINE

    def get_relation(self, database=None, schema=None, identifier=None):
        return None


adapter = _Adapter()
