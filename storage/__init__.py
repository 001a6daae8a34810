"""The database: SQLAlchemy models, engine and session factories, repository functions, migrations."""
