// `ferry/sqlite`: everything ferry offers on SQLite.
export * from './stores/sqlite.js';
export * from './transports/sqlite.js';
