// The gateway's two calls. Authenticated by GATEWAY_TOKEN; not audited row by row
// (the usage rows are the record). And the admins' view of the admission holds, whose
// expired ones this instance releases every ADMISSION_HOLD_SWEEP_SECONDS, and whose
// table's dead rows it vacuums every ADMISSION_HOLD_VACUUM_SECONDS.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ErrorBody, Errors, errorReply } from '../../http/errors.js'
import { errorResponses } from '../../http/schemas.js'
import { usdToNano } from '../../lib/money.js'
import { route } from '../../http/pipeline.js'
import { ingestEvents, type ChangedOwners } from '../usage/ingest.js'
import type { KeyState } from '../keys/counters.js'
import { VerifyCache } from './cache.js'
import { eventProblem, UsageBatch, UsageBatchResult, type EventResultBody } from '../usage/schemas.js'
import { HoldList, HoldsQuery, VerifyAllowed, VerifyBody, VerifyRefusal } from './schemas.js'
import { HoldPricer, listHolds, releaseExpiredHolds, vacuumHolds } from './holds.js'
import { Reserver, type ReserveSettings } from './reserve.js'
import { verifyKey, type VerifySettings } from './verify.js'
import { every } from '../../lib/periodic.js'

const tags = ['gateway']
/** PostgreSQL's numeric_value_out_of_range */
const NUMERIC_OUT_OF_RANGE = '22003'
const refusals = { 400: VerifyRefusal, 401: VerifyRefusal, 402: VerifyRefusal, 403: VerifyRefusal, 409: VerifyRefusal, 429: VerifyRefusal }

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const cache = new VerifyCache<KeyState>(app.config.VERIFY_CACHE_TTL_MS)
  const pricer = new HoldPricer(app.prisma, usdToNano(app.config.ADMISSION_DEFAULT_HOLD_USD))
  // any committed admin or user change may touch a key, its owner or a price: they are rare, so drop everything
  app.pipeline.onCommit(() => { cache.clear(); pricer.clear() })
  // recorded usage moves counters (window, in flight, costs, balances, holds) of the keys and owners its rows
  // name, not always the events (a completion need not carry its key id): their cached states are forgotten
  const onChanged = ({ keys, users }: ChangedOwners) => { if (keys.size + users.size > 0) cache.forget((state) => keys.has(state.id) || users.has(state.user_id)) }
  const settings: VerifySettings = { timeZone: app.config.APP_TIMEZONE, pendingTimeoutMinutes: app.config.PENDING_TIMEOUT_MINUTES, cache }
  const reserveSettings: ReserveSettings = { timeZone: app.config.APP_TIMEZONE, pendingTimeoutMinutes: app.config.PENDING_TIMEOUT_MINUTES, holdTtlSeconds: app.config.ADMISSION_HOLD_TTL_SECONDS, onHoldTaken: () => app.metrics.holdsTaken.inc() }
  const reserver = new Reserver(app.pg, app.keyring, reserveSettings)

  // the database may be down: the next tick tries again, and an expired hold counts for nothing meanwhile
  const sweeper = every(app.config.ADMISSION_HOLD_SWEEP_SECONDS * 1000, async () => {
    const released = await releaseExpiredHolds(app.pg)
    if (released > 0) app.metrics.holdsExpired.inc(released)
  }, (error) => { app.log.warn({ err: error }, 'releasing expired admission holds failed') })
  app.addHook('onClose', async () => { await sweeper.stop() })

  // settled holds' dead rows, vacuumed before a key's reads wade through them (holds.ts vacuumHolds)
  if (app.config.ADMISSION_HOLD_VACUUM_SECONDS > 0) {
    const vacuumer = every(app.config.ADMISSION_HOLD_VACUUM_SECONDS * 1000, async () => {
      const done = await vacuumHolds(app.pg)
      if (done === 'vacuumed') app.metrics.holdsVacuums.inc()
      if (done === 'not owner') {
        void vacuumer.stop()
        app.log.warn('admission_holds is not owned by this database user: its dead rows are left to autovacuum (docs/accounting.md)')
      }
    }, (error) => { app.log.warn({ err: error }, 'vacuuming admission_holds failed') })
    app.addHook('onClose', async () => { await vacuumer.stop() })
  }

  route(app, {
    method: 'POST',
    url: '/gateway/keys/verify',
    schema: { tags, summary: 'May this key make this request?', description: 'Checks the key, its owner, its allow-lists and every limit. Without request_id the answer is advisory; with one, the request is admitted and a hold is reserved against every cost limit until its completion is reported. A refusal\'s error.type names the failed check (key_invalid, rate_limited, balance_exhausted, ...); 429s carry Retry-After.', body: VerifyBody, response: { 200: VerifyAllowed, ...refusals } },
    action: 'gateway.verify',
    mode: 'gateway',
    handle: async ({ body }) => {
      try {
        const allowed = body.request_id === undefined
          ? await verifyKey(app.pg, app.keyring, body, settings)
          : await reserver.reserve(body, { request_id: body.request_id, model: body.model, ...await pricer.hold(body) })
        app.metrics.verifications.inc({ result: 'allowed' })
        return allowed
      } catch (error) {
        app.metrics.verifications.inc({ result: errorReply(error).type })
        throw error
      }
    }
  })

  route(app, {
    method: 'GET',
    url: '/admin/admission/holds',
    schema: { tags: ['admission'], summary: 'The live admission holds: requests admitted by a verify with a request_id and not settled yet', description: 'Filter by key or user; the newest `limit` holds are listed, with their count and sum. A hold that is never settled expires and stops counting.', querystring: HoldsQuery, response: { 200: HoldList, ...errorResponses() } },
    action: 'admission_holds.list',
    mode: 'admin',
    handle: async ({ query }) => await listHolds(app.pg, query)
  })

  route(app, {
    method: 'POST',
    url: '/gateway/usage',
    config: { itemsCheckedByHandler: 'events' },
    // a batch of 1000 completions with headers and bodies is far above the default limit
    bodyLimit: Math.max(app.config.BODY_LIMIT_BYTES, 32 * 1024 * 1024),
    schema: { tags, summary: 'Report request events (start, stream, complete), 1 to 1000 at a time', description: 'Each event is answered on its own in the same order: recorded, duplicate (a replay of an event already recorded) or rejected with its reason, so a batch is never refused for one bad event and can be retried safely.', body: UsageBatch, response: { 200: UsageBatchResult, 400: ErrorBody, 401: ErrorBody } },
    action: 'gateway.usage',
    mode: 'gateway',
    handle: async ({ body }) => {
      // a poisoned event is refused alone: refusing the batch would refuse its good events on every retry
      const results: EventResultBody[] = new Array(body.events.length)
      const accepted: number[] = []
      body.events.forEach((event, i) => {
        const problem = eventProblem(event, `events.${i}`)
        if (problem === null) accepted.push(i)
        else results[i] = { request_id: event.request_id, type: event.type, outcome: 'rejected', error: problem }
      })
      if (accepted.length > 0) {
        const ingested = await ingestEvents(app.ingestPg, accepted.map((i) => body.events[i]!), { onCommitted: app.metrics.usageCounted, onChanged, timeZone: app.config.APP_TIMEZONE }).catch((error: unknown) => {
          // a rollup or total that the batch would carry past its column: the batch is refused, never a 500
          if ((error as { code?: string }).code === NUMERIC_OUT_OF_RANGE) throw new Errors.InvalidInput('the batch would carry a total past its column\'s range')
          throw error
        })
        accepted.forEach((index, j) => { results[index] = ingested[j]! })
      }
      for (const result of results) app.metrics.gatewayEvents.inc({ type: result.type, outcome: result.outcome })
      return { results }
    }
  })
}

export default routes
