"""Catalog queries shared by the PostgreSQL dump, restore and probes.

Names travel hex-encoded (``encode(convert_to(name, 'UTF8'), 'hex')``) so that a name holding the
field separator, a newline or anything else comes back intact from psql's text output.
"""

from __future__ import annotations

USER_SCHEMA = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'"
NOT_EXTENSION = (
    "NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = {cat}::regclass"
    " AND d.objid = {oid} AND d.deptype = 'e')"
)
_HEX = "encode(convert_to({}, 'UTF8'), 'hex')"

# Base tables holding their own rows (leaf partitions included, partitioned parents and extension
# members excluded): exactly the tables pg_dump writes a TABLE DATA section for.
TABLES_SQL = (
    f"SELECT 'T', {_HEX.format('n.nspname')}, {_HEX.format('c.relname')},"
    " CASE WHEN pg_catalog.has_table_privilege(c.oid, 'SELECT') THEN 'y' ELSE 'n' END"
    " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    f" WHERE c.relkind = 'r' AND {USER_SCHEMA}"
    f" AND {NOT_EXTENSION.format(cat=repr('pg_class'), oid='c.oid')}"
    " ORDER BY n.nspname, c.relname;\n"
)

FACTS_SQL = (
    "SELECT 'V', current_setting('server_version'), pg_encoding_to_char(encoding)"
    " FROM pg_catalog.pg_database WHERE datname = current_database();\n"
    + TABLES_SQL
    + f"SELECT 'W', {_HEX.format('c.relname')} FROM pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    f" WHERE c.relkind IN ('v', 'm') AND {USER_SCHEMA}"
    f" AND {NOT_EXTENSION.format(cat=repr('pg_class'), oid='c.oid')} ORDER BY 2;\n"
    f"SELECT 'G', {_HEX.format('t.tgname')} FROM pg_catalog.pg_trigger t WHERE NOT t.tgisinternal ORDER BY 2;\n"
    f"SELECT 'R', {_HEX.format('p.proname')} FROM pg_catalog.pg_proc p"
    " JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
    f" WHERE {USER_SCHEMA} AND {NOT_EXTENSION.format(cat=repr('pg_proc'), oid='p.oid')} ORDER BY 2;\n"
)

# How many user objects a database holds (relations, routines, types, non-public schemas).
COUNT_OBJECTS_SQL = (
    "SELECT (SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    f" WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {USER_SCHEMA}"
    f" AND {NOT_EXTENSION.format(cat=repr('pg_class'), oid='c.oid')})"
    " + (SELECT count(*) FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
    f" WHERE {USER_SCHEMA} AND {NOT_EXTENSION.format(cat=repr('pg_proc'), oid='p.oid')})"
    " + (SELECT count(*) FROM pg_catalog.pg_namespace n WHERE n.nspname <> 'public' AND"
    f" {USER_SCHEMA} AND {NOT_EXTENSION.format(cat=repr('pg_namespace'), oid='n.oid')});\n"
)

# Empty a database for a forced restore: drop the other user schemas, then everything in public.
DROP_ALL_SQL = f"""DO $cb$
DECLARE r record;
BEGIN
  FOR r IN SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.nspname <> 'public' AND {USER_SCHEMA}
      AND {NOT_EXTENSION.format(cat="'pg_namespace'", oid="n.oid")} LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', r.nspname);
  END LOOP;
  FOR r IN SELECT c.relname, c.relkind FROM pg_catalog.pg_class c
      WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND {NOT_EXTENSION.format(cat="'pg_class'", oid="c.oid")} LOOP
    EXECUTE format('DROP %s IF EXISTS public.%I CASCADE', CASE r.relkind WHEN 'v' THEN 'VIEW'
      WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE'
      ELSE 'TABLE' END, r.relname);
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure AS sig FROM pg_catalog.pg_proc p
      WHERE p.pronamespace = 'public'::regnamespace AND {NOT_EXTENSION.format(cat="'pg_proc'", oid="p.oid")} LOOP
    EXECUTE format('DROP ROUTINE IF EXISTS %s CASCADE', r.sig);
  END LOOP;
  FOR r IN SELECT t.oid::regtype AS typ FROM pg_catalog.pg_type t
      WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('c', 'd', 'e', 'r', 'm')
      AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid) = 'c')
      AND {NOT_EXTENSION.format(cat="'pg_type'", oid="t.oid")} LOOP
    EXECUTE format('DROP TYPE IF EXISTS %s CASCADE', r.typ);
  END LOOP;
END
$cb$;
"""


def table_key(schema: str, table: str) -> str:
    """The manifest name of a table: its name in ``public``, ``schema.table`` elsewhere."""
    return table if schema == "public" else f"{schema}.{table}"
