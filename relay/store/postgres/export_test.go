package postgres

// NewDatabase is newDatabase for the external tests in this directory.
var NewDatabase = newDatabase
