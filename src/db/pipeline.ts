// Several statements in one round trip (PostgreSQL's extended protocol: Parse, Bind,
// Describe, Execute for each, then one Sync): node-postgres sends one statement per round
// trip, and on this host each socket write costs ~0.1 ms, as much as a short statement.
// The statements run in order in one session; the first that fails makes PostgreSQL skip
// the rest, and the whole pipeline rejects with its error. Each statement is named after
// its text and parsed once per connection, as prepared() does (planning a counters read
// costs more than running it).
import pg from 'pg'
import type { Sql as Fragment } from 'sql-template-tag'
import { statementName } from './prisma.js'

interface Connection {
  stream: { cork?: () => void, uncork?: () => void }
  /** node-postgres's record of the statements parsed on this connection, by name */
  parsedStatements: Record<string, string>
  parse: (query: { text: string, name: string }) => void
  bind: (config: { portal: string, statement: string, values: unknown[], valueMapper: (value: unknown) => unknown }) => void
  describe: (message: { type: 'P', name: string }) => void
  execute: (config: { portal: string }) => void
  close: (message: { type: 'S', name: string }) => void
  sync: () => void
}

type Answer = (error: Error | null, results?: pg.QueryResult | pg.QueryResult[]) => void
// node-postgres's Query handles the answers (several results, errors, ReadyForQuery); only what is sent differs
const QueryBase = pg.Query as unknown as new (text: string) => { callback: Answer }
// node-postgres's own mapping of JavaScript values to parameters (dates, arrays, buffers, bigints)
const { prepareValue } = (pg as unknown as { utils: { prepareValue: (value: unknown) => unknown } }).utils

class Pipeline extends QueryBase {
  constructor (private readonly statements: readonly Fragment[], callback: Answer) {
    super('')
    this.callback = (error, results) => {
      if (error === null) for (const text of this.parsed) this.connection!.parsedStatements[statementName(text)] = text
      // which of the new statements PostgreSQL parsed before the error is unknown: close them
      // all (closing a statement that does not exist is no error), so the next use parses again
      // (no Sync: its ReadyForQuery would answer the next query; the CloseCompletes are ignored)
      else for (const text of this.parsed) this.connection!.close({ type: 'S', name: statementName(text) })
      callback(error, results)
    }
  }

  /** the texts this pipeline parses (not parsed on its connection before) */
  private readonly parsed: string[] = []
  private connection: Connection | undefined

  submit (connection: Connection): null {
    this.connection = connection
    connection.stream.cork?.()
    try {
      for (const statement of this.statements) {
        const name = statementName(statement.text)
        // a text met twice in one pipeline is parsed once
        if (connection.parsedStatements[name] !== statement.text && !this.parsed.includes(statement.text)) {
          connection.parse({ text: statement.text, name })
          this.parsed.push(statement.text)
        }
        connection.bind({ portal: '', statement: name, values: statement.values, valueMapper: prepareValue })
        connection.describe({ type: 'P', name: '' })
        connection.execute({ portal: '' })
      }
      connection.sync()
    } finally {
      connection.stream.uncork?.()
    }
    return null
  }
}

/** The statements' results, in order (every statement's, rows or none). */
export async function pipeline (client: pg.ClientBase, statements: readonly Fragment[]): Promise<pg.QueryResult[]> {
  if (statements.length === 0) return []
  // a submittable query answers through its callback, not a promise
  const results = await new Promise<pg.QueryResult | pg.QueryResult[]>((resolve, reject) => {
    client.query(new Pipeline(statements, (error, answer) => { if (error === null) resolve(answer!); else reject(error) }) as unknown as pg.QueryConfig)
  })
  return Array.isArray(results) ? results : [results]
}
