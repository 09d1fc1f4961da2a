// What a batch newly counted, for the metrics (http/metrics.ts), reported after its COMMIT:
// each request once, when it first finishes (accounting/rules.ts), with the tokens and cost it adds to the books.
import type { CountedUsage } from '../../../http/metrics.js'
import { isFinished } from '../../accounting/rules.js'
import type { RowState } from './row.js'

export function countedUsage (before: ReadonlyMap<string, RowState>, rows: readonly RowState[]): CountedUsage[] {
  const counted: CountedUsage[] = []
  for (const after of rows) {
    if (!isFinished(after.status)) continue
    const prior = before.get(after.requestId)
    // a finished row changes only when a late completion replaces a timeout sweep: the request
    // was counted then, so only what the completion adds is counted now (a counter never goes down)
    const was = prior !== undefined && isFinished(prior.status) ? prior : null
    const added = (field: 'inputTokens' | 'outputTokens' | 'cacheCreationTokens' | 'cacheReadTokens') => Math.max(0, after[field] - (was === null ? 0 : was[field]))
    const cost = after.totalCost - (was === null ? 0n : was.totalCost)
    counted.push({
      model: after.modelPriceId === null ? null : after.model,
      provider: after.providerId === null ? null : after.providerName,
      status: after.status,
      requests: was === null ? 1 : 0,
      inputTokens: added('inputTokens'),
      outputTokens: added('outputTokens'),
      cacheCreationTokens: added('cacheCreationTokens'),
      cacheReadTokens: added('cacheReadTokens'),
      costNano: cost > 0n ? cost : 0n
    })
  }
  return counted
}
