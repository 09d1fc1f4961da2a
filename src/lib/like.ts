/** A LIKE/ILIKE pattern matching `text` anywhere, its own `%`, `_` and `\` taken literally (the statement says `ESCAPE '\'`, or relies on it being the default). */
export const containsPattern = (text: string) => `%${text.replace(/[\\%_]/g, '\\$&')}%`
