import Type, { type Static } from 'typebox'
import { IdParams, Nullable, SkipLimit, Timestamp, Uuid } from '../../http/schemas.js'

const Username = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.@-]+$' })
const Email = Type.String({ format: 'email', maxLength: 254 })
const Password = Type.String({ minLength: 8, maxLength: 256 })
const Role = Type.Union([Type.Literal('admin'), Type.Literal('user')])
/** null or absent = no restriction */
const AllowList = Nullable(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 500, uniqueItems: true }))
const Usd = Type.Number({ minimum: 0, maximum: 1e9 })

export const Profile = Type.Object({
  id: Uuid,
  email: Nullable(Type.String()),
  username: Type.String(),
  role: Role,
  is_active: Type.Boolean(),
  quota_usd: Nullable(Type.Number({ description: 'null = unlimited' })),
  used_usd: Type.Number(),
  created_at: Timestamp,
  updated_at: Timestamp,
  last_login_at: Nullable(Timestamp)
})

export const UserRecord = Type.Object({
  ...Profile.properties,
  allowed_providers: AllowList,
  allowed_api_formats: AllowList,
  allowed_models: AllowList
})

export const UserCreate = Type.Object({
  username: Username,
  email: Type.Optional(Nullable(Email)),
  password: Password,
  role: Type.Optional(Role),
  allowed_providers: Type.Optional(AllowList),
  allowed_api_formats: Type.Optional(AllowList),
  allowed_models: Type.Optional(AllowList),
  quota_usd: Type.Optional(Nullable(Usd)),
  is_active: Type.Optional(Type.Boolean())
}, { additionalProperties: false })

export const UserUpdate = Type.Object({
  username: Type.Optional(Username),
  email: Type.Optional(Nullable(Email)),
  password: Type.Optional(Password),
  role: Type.Optional(Role),
  allowed_providers: Type.Optional(AllowList),
  allowed_api_formats: Type.Optional(AllowList),
  allowed_models: Type.Optional(AllowList),
  quota_usd: Type.Optional(Nullable(Usd)),
  is_active: Type.Optional(Type.Boolean())
}, { additionalProperties: false, minProperties: 1 })

export const UserListQuery = Type.Object({
  ...SkipLimit(500, 100),
  role: Type.Optional(Role),
  is_active: Type.Optional(Type.Boolean())
}, { additionalProperties: false })

export const UserList = Type.Object({ users: Type.Array(UserRecord), total: Type.Integer(), skip: Type.Integer(), limit: Type.Integer() })

export const UserIdParams = IdParams

export type UserCreateBody = Static<typeof UserCreate>
export type UserUpdateBody = Static<typeof UserUpdate>
