// `ferry/mysql`: the transactional outbox and the inbox on MySQL 8 / MariaDB 10.6+ (`mysql2`).
export {
  mysqlInbox,
  mysqlOutbox,
  mysqlOutboxStore,
  type MysqlConnectionOptions,
  type MysqlInbox,
  type MysqlInboxOptions,
  type MysqlOutbox,
  type MysqlOutboxOptions,
  type MysqlOutboxStore,
  type MysqlPool,
  type MysqlPoolConnection,
  type MysqlQueryable,
} from './outbox/sql/mysql.js';
