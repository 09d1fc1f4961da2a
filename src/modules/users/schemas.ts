import Type, { type Static } from 'typebox'
import { CountedArray, IdParams, Nullable, SkipLimit, Timestamp, Uuid } from '../../http/schemas.js'
import { shared } from '../../http/openapi.js'

const Username = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.@-]+$' })
const Email = Type.String({ format: 'email', maxLength: 254 })
const Password = Type.String({ minLength: 8, maxLength: 256 })
const Role = Type.Union([Type.Literal('admin'), Type.Literal('user')])
/** null or absent = no restriction */
const allowList = (description?: string) => Type.Union([Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 500, uniqueItems: true }), Type.Null()], { description })
const AllowList = allowList()
const Usd = Type.Number({ minimum: 0, maximum: 1e9 })

export const Profile = Type.Object({
  id: Uuid,
  email: Nullable(Type.String()),
  username: Type.String(),
  role: Role,
  is_active: Type.Boolean(),
  quota_usd: Nullable(Type.Number({ description: 'null = unlimited' })),
  used_usd: Type.Number({ description: 'charged since the last quota reset' }),
  total_usd: Type.Number({ description: 'charged ever, in used_usd\'s measure; a quota reset leaves it' }),
  created_at: Timestamp,
  updated_at: Timestamp,
  last_login_at: Nullable(Timestamp)
})

export const UserRecord = shared('UserRecord', Type.Object({
  ...Profile.properties,
  allowed_providers: allowList('provider ids (a name given on write is stored as its id); null = no restriction'),
  allowed_provider_names: Nullable(Type.Array(Nullable(Type.String()), { description: 'the current names of allowed_providers, in place; null for a provider deleted since' })),
  allowed_api_formats: AllowList,
  allowed_endpoints: allowList('Aether\'s name for allowed_api_formats (the same list)'),
  allowed_models: AllowList
}))

/** Aether's form names the API-format list allowed_endpoints; either name is taken, both only if equal. */
const AllowedEndpoints = Type.Optional(allowList('Aether\'s name for allowed_api_formats; if both are given they must be equal'))

export const UserCreate = Type.Object({
  username: Username,
  email: Type.Optional(Nullable(Email)),
  password: Password,
  role: Type.Optional(Role),
  allowed_providers: Type.Optional(AllowList),
  allowed_api_formats: Type.Optional(AllowList),
  allowed_endpoints: AllowedEndpoints,
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
  allowed_endpoints: AllowedEndpoints,
  allowed_models: Type.Optional(AllowList),
  quota_usd: Type.Optional(Nullable(Usd)),
  is_active: Type.Optional(Type.Boolean())
}, { additionalProperties: false, minProperties: 1 })

/** Aether's users page fetches every user at once: unknown parameters ignored, not refused (AETHER.md §1) */
export const UserListQuery = Type.Object({
  ...SkipLimit(1000, 1000),
  role: Type.Optional(Role),
  is_active: Type.Optional(Type.Boolean())
})

export const UserList = CountedArray(UserRecord, 'oldest first')

export const UserIdParams = IdParams

/** PATCH /api/admin/users/:id/quota: Aether's reset, read by its users page */
export const QuotaReset = Type.Object({
  message: Type.String(),
  user_id: Uuid,
  quota_usd: Nullable(Type.Number({ description: 'null = unlimited' })),
  used_usd: Type.Number({ description: '0 after the reset (or what a batch charged since)' }),
  total_usd: Type.Number({ description: 'charged ever; the reset leaves it' })
})

export type UserCreateBody = Static<typeof UserCreate>
export type UserUpdateBody = Static<typeof UserUpdate>

/** PUT /api/users/me (Aether's settings page): either field, at least one. */
export const OwnProfileUpdate = Type.Object({
  username: Type.Optional(Username),
  email: Type.Optional(Email)
}, { additionalProperties: false, minProperties: 1 })

export const PasswordChange = Type.Object({
  old_password: Type.String({ minLength: 1, maxLength: 256 }),
  new_password: Password
}, { additionalProperties: false })

const Notifications = Type.Object({
  email: Nullable(Type.Boolean()),
  usage_alerts: Nullable(Type.Boolean()),
  announcements: Nullable(Type.Boolean())
})

/** The dashboard's settings of a user; null = never set. */
export const Preferences = Type.Object({
  avatar_url: Nullable(Type.String({ maxLength: 2048 })),
  bio: Nullable(Type.String({ maxLength: 1000 })),
  theme: Nullable(Type.String({ maxLength: 32 })),
  language: Nullable(Type.String({ maxLength: 16 })),
  timezone: Nullable(Type.String({ maxLength: 64, description: 'an IANA time zone' })),
  notifications: Notifications
})

/**
 * Every key optional (absent = unchanged, null = cleared). The notification switches are
 * taken nested, as the dashboard reads them, or flat, as Aether's own API names them.
 * Other keys are ignored: the dashboard's form may send more than keymeter keeps.
 */
export const PreferencesUpdate = Type.Object({
  avatar_url: Type.Optional(Nullable(Type.String({ maxLength: 2048 }))),
  bio: Type.Optional(Nullable(Type.String({ maxLength: 1000 }))),
  theme: Type.Optional(Nullable(Type.String({ maxLength: 32 }))),
  language: Type.Optional(Nullable(Type.String({ maxLength: 16 }))),
  timezone: Type.Optional(Nullable(Type.String({ maxLength: 64, description: 'an IANA time zone' }))),
  notifications: Type.Optional(Type.Partial(Notifications)),
  email_notifications: Type.Optional(Nullable(Type.Boolean())),
  usage_alerts: Type.Optional(Nullable(Type.Boolean())),
  announcement_notifications: Type.Optional(Nullable(Type.Boolean()))
})

export type PreferencesBody = Static<typeof Preferences>
export type PreferencesUpdateBody = Static<typeof PreferencesUpdate>
