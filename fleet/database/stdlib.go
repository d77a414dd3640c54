package database

import (
	"database/sql"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// stdlibDB gives goose a database/sql view of the pool (nil for none).
func stdlibDB(pool *pgxpool.Pool) *sql.DB {
	if pool == nil {
		return nil
	}
	return stdlib.OpenDBFromPool(pool)
}
