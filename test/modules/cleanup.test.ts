import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'
import { scheduleCleanup } from '../../src/modules/cleanup/schedule.js'
import { applyRetention, runCleanup, runCleanupJob } from '../../src/modules/cleanup/service.js'
import { buildTestApp, signIn, waitUntil, type TestApp } from '../helper.js'
import { CHILD_COVERAGE_OFF } from '../process.js'
import { assertConsistent, gateway } from './gateway/fixtures.js'

const past = new Date(Date.now() - 3_600_000)
const future = new Date(Date.now() + 3_600_000)

async function seedKeys ({ app }: TestApp) {
  const owner = await signIn(app, 'user')
  const make = (name: string, expiresAt: Date | null, autoDelete: boolean | null, isActive = true) =>
    app.prisma.apiKey.create({ data: { userId: owner.id, name, keyHash: `hash-${name}`, keyPrefix: 'sk-…', keyEncrypted: 'x', expiresAt, autoDeleteOnExpiry: autoDelete, isActive } })
  const keys = {
    deleteRule: await make('delete-rule', past, true),
    disableRule: await make('disable-rule', past, false),
    followGlobal: await make('follow-global', past, null),
    notYet: await make('not-yet', future, true),
    never: await make('never', null, true),
    alreadyOff: await make('already-off', past, true, false)
  }
  await app.prisma.usage.create({ data: { requestId: 'kept', apiKeyId: keys.deleteRule.id, userId: owner.id, model: 'm', status: 'completed', totalCost: 42n } })
  return keys
}

const state = async ({ app }: TestApp, id: string) => (await app.prisma.apiKey.findUnique({ where: { id } }))?.isActive ?? 'deleted'

t.test('expired keys are disabled or deleted by their rule; null follows the global setting (false)', async (t) => {
  const test = await buildTestApp(t)
  const keys = await seedKeys(test)
  const summary = await runCleanup(test.app.prisma, { autoDeleteExpiredKeys: false })
  t.same(summary, { disabled: 2, deleted: 1 })
  t.equal(await state(test, keys.deleteRule.id), 'deleted')
  t.equal(await state(test, keys.disableRule.id), false)
  t.equal(await state(test, keys.followGlobal.id), false)
  t.equal(await state(test, keys.notYet.id), true)
  t.equal(await state(test, keys.never.id), true)
  t.equal(await state(test, keys.alreadyOff.id), false, 'an inactive key is left alone, not deleted')

  const usage = await test.app.prisma.usage.findFirstOrThrow({ where: { requestId: 'kept' } })
  t.equal(usage.apiKeyId, null, 'usage of a deleted key keeps its history')
  t.equal(usage.totalCost, 42n)

  const audit = await test.app.prisma.auditLog.findMany({ where: { eventType: 'system' }, orderBy: { action: 'asc' } })
  t.same(audit.map((a) => [a.action, a.principalType, (a.metadata as { key_name: string }).key_name]).sort(), [
    ['key_expired_deleted', 'system', 'delete-rule'],
    ['key_expired_disabled', 'system', 'disable-rule'],
    ['key_expired_disabled', 'system', 'follow-global']
  ])

  t.same(await runCleanup(test.app.prisma, { autoDeleteExpiredKeys: false }), { disabled: 0, deleted: 0 }, 'a second run changes nothing')
  t.equal(await test.app.prisma.auditLog.count({ where: { eventType: 'system' } }), 3)
})

t.test('with AUTO_DELETE_EXPIRED_KEYS, null-rule keys are deleted', async (t) => {
  const test = await buildTestApp(t)
  const keys = await seedKeys(test)
  t.same(await runCleanup(test.app.prisma, { autoDeleteExpiredKeys: true }), { disabled: 1, deleted: 2 })
  t.equal(await state(test, keys.followGlobal.id), 'deleted')
  t.equal(await state(test, keys.disableRule.id), false, 'an explicit false still only disables')
})

t.test('two runs at once handle each key exactly once', async (t) => {
  const test = await buildTestApp(t)
  await seedKeys(test)
  const runs = await Promise.all([
    runCleanup(test.app.prisma, { autoDeleteExpiredKeys: false }),
    runCleanup(test.app.prisma, { autoDeleteExpiredKeys: false }),
    runCleanup(test.app.prisma, { autoDeleteExpiredKeys: false })
  ])
  const total = runs.reduce((sum, r) => ({ disabled: sum.disabled + r.disabled, deleted: sum.deleted + r.deleted }), { disabled: 0, deleted: 0 })
  t.same(total, { disabled: 2, deleted: 1 })
  t.equal(await test.app.prisma.auditLog.count({ where: { eventType: 'system' } }), 3, 'one audit row per key')
})

t.test('npm run cleanup (the CLI) prints a one-line summary and exits 0', async (t) => {
  const test = await buildTestApp(t)
  await seedKeys(test)
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'cleanup'], {
    env: { ...process.env, ...CHILD_COVERAGE_OFF, DATABASE_URL: test.url, SESSION_SECRET: test.config.SESSION_SECRET, ENCRYPTION_KEY: test.config.ENCRYPTION_KEY }
  })
  t.match(JSON.parse(stdout), { level: 30, msg: 'disabled 2, deleted 1' }, 'one JSON line (stdout is no terminal)')
})

t.test('the in-process schedule runs the cleanup, and "off" schedules nothing', async (t) => {
  const test = await buildTestApp(t)
  const keys = await seedKeys(test)
  t.equal(scheduleCleanup(test.app.prisma, test.app.pg, { ...test.config, CLEANUP_CRON: 'off' }, test.app.log), null)
  const job = scheduleCleanup(test.app.prisma, test.app.pg, { ...test.config, CLEANUP_CRON: '* * * * * *', APP_TIMEZONE: 'Asia/Shanghai' }, test.app.log)
  t.teardown(() => job?.stop())
  t.ok(job)
  // the schedule fires each second: wait for its first run to change the key
  await waitUntil('the scheduled run', () => state(test, keys.disableRule.id), (active) => active !== true, { intervalMs: 100 })
  t.equal(await state(test, keys.disableRule.id), false, 'the scheduled run disabled the key')
})

t.test('retention: old bodies and audit rows go, recent ones and all usage rows stay (usage retention off); 0 keeps forever', async (t) => {
  const test = await buildTestApp(t)
  const { app } = test
  const old = new Date(Date.now() - 40 * 86_400_000)
  const oldUsage = await app.prisma.usage.create({ data: { requestId: 'old', model: 'm', status: 'completed', createdAt: old } })
  const newUsage = await app.prisma.usage.create({ data: { requestId: 'new', model: 'm', status: 'completed' } })
  await app.prisma.usageBody.create({ data: { usageId: oldUsage.id, requestBody: { a: 1 }, createdAt: old } })
  await app.prisma.usageBody.create({ data: { usageId: newUsage.id, requestBody: { b: 2 }, createdAt: newUsage.createdAt } })
  await app.prisma.auditLog.create({ data: { eventType: 'admin', action: 'x', principalType: 'admin', success: true, createdAt: new Date(Date.now() - 400 * 86_400_000) } })
  await app.prisma.auditLog.create({ data: { eventType: 'admin', action: 'y', principalType: 'admin', success: true } })

  // the rate window's per-second counts: 49 hours old goes (past the longest window and a day), 47 hours stays, whatever the settings
  const keyId = '00000000-0000-4000-8000-000000000001'
  for (const hours of [49, 47]) await app.prisma.usageKeySecond.create({ data: { apiKeyId: keyId, tenantId: keyId, second: new Date(Math.floor(Date.now() / 1000 - hours * 3600) * 1000), requests: 1 } })

  t.same(await applyRetention(app.prisma, app.pg, { usageDays: 0, bodyDays: 0, auditDays: 0 }), { usageRows: 0, usagePartitions: 0, candidates: 0, bodies: 0, bodyPartitions: 0, auditRows: 0, auditPartitions: 0, windowSeconds: 1 }, '0 keeps bodies and audit rows; the old second goes')
  t.same(await applyRetention(app.prisma, app.pg, { usageDays: 0, bodyDays: 30, auditDays: 365 }), { usageRows: 0, usagePartitions: 0, candidates: 0, bodies: 1, bodyPartitions: 0, auditRows: 1, auditPartitions: 0, windowSeconds: 0 })
  t.equal(await app.prisma.usageKeySecond.count(), 1, 'the recent second stays')
  t.same((await app.prisma.usageBody.findMany()).map((b) => b.usageId), [newUsage.id])
  t.same((await app.prisma.auditLog.findMany()).map((a) => a.action), ['y'])
  t.equal(await app.prisma.usage.count(), 2, 'usage retention off (its default): every usage row stays')

  const line = await runCleanupJob(app.prisma, app.pg, test.config)
  t.equal(line, 'disabled 0, deleted 0', 'nothing left to do')
})

t.test('an expired key deleted by the cleanup leaves the books as an admin\'s hard delete does: its usage and rollups under no key', async (t) => {
  const g = await gateway(t)
  const user = await g.user()
  const doomed = await g.userKey(user.id, { auto_delete_on_expiry: true })
  const kept = await g.userKey(user.id)
  const at = (minute: number) => new Date(Date.now() - (60 - minute) * 60_000).toISOString()
  const events = [doomed, kept].flatMap((key, k) => [0, 1, 2].map((i) => ({
    type: 'complete', request_id: `cleanup-${k}-${i}`, api_key_id: key.id, model: 'm', created_at: at(i * 10),
    status: 'completed', status_code: 200, input_tokens: 100 * (i + 1), output_tokens: 10, cache_read_input_tokens: 50, response_time_ms: 100
  })))
  t.same((await g.send(events)).map((r) => r.outcome), events.map(() => 'recorded'))
  await g.app.prisma.apiKey.update({ where: { id: doomed.id }, data: { expiresAt: new Date(Date.now() - 1000) } })
  t.same(await runCleanup(g.app.prisma, { autoDeleteExpiredKeys: false }), { disabled: 0, deleted: 1 })
  t.equal(await g.app.prisma.usage.count({ where: { requestId: { startsWith: 'cleanup-0-' }, apiKeyId: null } }), 3, 'the deleted key\'s rows kept, without the key')
  await assertConsistent(t, g.app, 'after the cleanup\'s delete: ')
})
