#!/bin/sh
# Temporal's persistence and visibility databases on PostgreSQL, created once and updated
# to the schema version of the server image on every start (both steps are idempotent).
set -eu

schema=/etc/temporal/schema/postgresql/v12
for db in temporal temporal_visibility; do
    case "$db" in
        temporal) dir="$schema/temporal/versioned" ;;
        *) dir="$schema/visibility/versioned" ;;
    esac
    tool() {
        temporal-sql-tool --plugin postgres12 --ep "$SQL_HOST" -p 5432 \
            -u "$SQL_USER" --pw "$SQL_PASSWORD" --db "$db" "$@"
    }
    tool create || true
    tool setup-schema -v 0.0 || true
    tool update-schema -d "$dir"
done
echo "temporal schemas are up to date"
