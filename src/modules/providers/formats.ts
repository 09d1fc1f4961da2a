// The API formats a key or user allow-list can name (Aether's GET
// /api/admin/system/api-formats): the formats keymeter knows, then any other format an
// endpoint is configured with. Owned by providers: an endpoint's api_format is the value.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import sql from 'sql-template-tag'
import Type from 'typebox'
import type { Db } from '../../db/prisma.js'
import { errorResponses } from '../../http/schemas.js'
import { route } from '../../http/pipeline.js'

export interface ApiFormat { value: string, label: string, default_path?: string }

/** The formats the gateway speaks, as its usage events and verify calls name them. */
export const KNOWN_API_FORMATS: readonly ApiFormat[] = [
  { value: 'claude:messages', label: 'Claude Messages', default_path: '/v1/messages' },
  { value: 'openai:chat', label: 'OpenAI Chat Completions', default_path: '/v1/chat/completions' },
  { value: 'openai:responses', label: 'OpenAI Responses', default_path: '/v1/responses' },
  { value: 'gemini:generate', label: 'Gemini generateContent', default_path: '/v1beta/models/{model}:generateContent' }
]

/** The known formats in their order, then the other configured ones by name (the label is the value). */
export async function listApiFormats (db: Db): Promise<ApiFormat[]> {
  // provider_endpoints is a small catalogue table, read whole
  const query = sql`SELECT DISTINCT api_format FROM provider_endpoints ORDER BY api_format`
  const rows = await db.$queryRawUnsafe<Array<{ api_format: string }>>(query.text, ...query.values)
  const known = new Set(KNOWN_API_FORMATS.map((format) => format.value))
  const configured = rows.map((row) => row.api_format).filter((value) => !known.has(value))
  return [...KNOWN_API_FORMATS, ...configured.map((value) => ({ value, label: value }))]
}

const ApiFormatList = Type.Object({
  formats: Type.Array(Type.Object({
    value: Type.String({ description: 'the string allow-lists and endpoints hold' }),
    label: Type.String(),
    default_path: Type.Optional(Type.String({ description: 'the upstream path of a known format' })),
    aliases: Type.Optional(Type.Array(Type.String()))
  }))
})

const formatRoutes: FastifyPluginAsyncTypebox = async (app) => {
  route(app, {
    method: 'GET',
    url: '/admin/system/api-formats',
    // no querystring schema: Aether's form sends no parameters, and any it might are ignored (AETHER.md §1)
    schema: { tags: ['providers'], summary: 'The API formats an allow-list can name: the known ones, then the other configured endpoints\' formats', description: 'The values an API-format allow-list (of a key or a user) can take.', response: { 200: ApiFormatList, ...errorResponses() } },
    action: 'api_formats.list',
    mode: 'admin',
    handle: async ({ db }) => ({ formats: await listApiFormats(db) })
  })
}

export default formatRoutes
