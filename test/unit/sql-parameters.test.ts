import { describe, expect, it } from 'vitest';
import { compileSql, sqlCompiler } from '../../src/outbox/sql/dialect.js';

describe('SQL parameters', () => {
  it('numbers `@name` parameters for PostgreSQL, a repeated name keeping its number', () => {
    expect(compileSql('SELECT @a, @b::int, @a', true)).toEqual({
      text: 'SELECT $1, $2::int, $1',
      names: ['a', 'b'],
    });
  });

  it('binds `@name` parameters once per use for `?` drivers', () => {
    const compile = sqlCompiler(false);
    expect(compile('UPDATE t SET a = @a WHERE b = @b OR a = @a', { a: 1, b: 2 })).toEqual({
      text: 'UPDATE t SET a = ? WHERE b = ? OR a = ?',
      values: [1, 2, 1],
    });
  });

  it('turns `?` into numbered placeholders bound from a list', () => {
    const compile = sqlCompiler(true);
    expect(compile('INSERT INTO t VALUES (?, ?, ?)', ['x', 2, null])).toEqual({
      text: 'INSERT INTO t VALUES ($1, $2, $3)',
      values: ['x', 2, null],
    });
  });

  it('leaves `?` and `@` inside quoted literals and identifiers alone', () => {
    const compile = sqlCompiler(true);
    const sql = `SELECT 'why?', 'it''s @home', "col?", \`x@y\` FROM t WHERE a = ? AND b = @b`;
    const { text, values } = compile(sql, Object.assign([7], { b: 8 }));
    expect(text).toBe(
      `SELECT 'why?', 'it''s @home', "col?", \`x@y\` FROM t WHERE a = $1 AND b = $2`,
    );
    expect(values).toEqual([7, 8]);
  });
});
