import type {
  AdminUserPage,
  AroundPage,
  MemberPage,
  ModerationPage,
  Message,
  MessagePage,
  Room,
  RoomPage,
  RoomQuery,
  RoomRestriction,
  ServerLimits,
  SearchPage,
  ServerStatus,
  User,
} from '@/api/types'

/** An HTTP answer other than 2xx, with the contract's error body. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds, from a Retry-After header (429). */
    readonly retryAfter: number | null = null,
  ) {
    super(message)
    this.name = 'ApiError'
  }
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = {
    method,
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
  }
  if (body !== undefined) {
    init.headers = { ...init.headers, 'Content-Type': 'application/json' }
    init.body = JSON.stringify(body)
  }
  const response = await fetch(path, init)
  if (response.ok) {
    return (response.status === 204 ? undefined : await response.json()) as T
  }
  throw await toApiError(response)
}

async function toApiError(response: Response): Promise<ApiError> {
  let code = `http_${response.status}`
  let message = response.statusText
  try {
    const payload = (await response.json()) as { error?: { code?: string; message?: string } }
    code = payload.error?.code ?? code
    message = payload.error?.message ?? message
  } catch {
    // Not the contract's error body (a proxy page, for example): keep the status.
  }
  const retryAfter = Number.parseInt(response.headers.get('Retry-After') ?? '', 10)
  return new ApiError(response.status, code, message, Number.isNaN(retryAfter) ? null : retryAfter)
}

const room = (slug: string) => `/api/rooms/${encodeURIComponent(slug)}`

function roomQuery(query: RoomQuery): string {
  const params = new URLSearchParams()
  if (query.joined) params.set('joined', 'true')
  if (query.q) params.set('q', query.q)
  if (query.cursor) params.set('cursor', query.cursor)
  if (query.limit !== undefined) params.set('limit', String(query.limit))
  const text = params.toString()
  return text === '' ? '' : `?${text}`
}

export const api = {
  me: () => request<{ user: User; limits?: ServerLimits }>('GET', '/api/me'),
  register: (username: string, password: string, display_name?: string) =>
    request<{ user: User }>('POST', '/api/register', { username, password, display_name }),
  login: (username: string, password: string) =>
    request<{ user: User }>('POST', '/api/login', { username, password }),
  logout: () => request<void>('POST', '/api/logout'),
  logoutEverywhere: () => request<void>('POST', '/api/logout/all'),
  changeDisplayName: (display_name: string) =>
    request<{ user: User }>('PATCH', '/api/me', { display_name }),
  changePassword: (current_password: string, new_password: string) =>
    request<void>('POST', '/api/me/password', { current_password, new_password }),

  rooms: (query: RoomQuery = {}) => request<RoomPage>('GET', `/api/rooms${roomQuery(query)}`),
  room: (slug: string) => request<{ room: Room }>('GET', room(slug)),
  joinRoom: (slug: string) => request<void>('POST', `${room(slug)}/join`),
  leaveRoom: (slug: string) => request<void>('POST', `${room(slug)}/leave`),
  createRoom: (slug: string, title: string, isPrivate: boolean) =>
    request<{ room: Room }>('POST', '/api/rooms', { slug, title, private: isPrivate }),
  members: (slug: string, after: string | null, limit: number) =>
    request<MemberPage>(
      'GET',
      `${room(slug)}/members?limit=${limit}` +
        (after === null ? '' : `&after=${encodeURIComponent(after)}`),
    ),
  addMember: (slug: string, username: string) =>
    request<void>('POST', `${room(slug)}/members`, { username }),
  removeMember: (slug: string, username: string) =>
    request<void>('DELETE', `${room(slug)}/members/${encodeURIComponent(username)}`),

  startConversation: (usernames: string[]) =>
    request<{ room: Room }>('POST', '/api/dms', { usernames }),

  latestMessages: (slug: string, limit = 50) =>
    request<MessagePage>('GET', `${room(slug)}/messages?limit=${limit}`),
  messagesBefore: (slug: string, before: Message['id'], limit = 50) =>
    request<MessagePage>(
      'GET',
      `${room(slug)}/messages?before=${encodeURIComponent(before)}&limit=${limit}`,
    ),

  messagesAfter: (slug: string, after: Message['id'], limit = 200) =>
    request<MessagePage>(
      'GET',
      `${room(slug)}/messages?after=${encodeURIComponent(after)}&limit=${limit}`,
    ),
  messagesAround: (slug: string, around: Message['id'], limit = 50) =>
    request<AroundPage>(
      'GET',
      `${room(slug)}/messages?around=${encodeURIComponent(around)}&limit=${limit}`,
    ),
  search: (q: string, options: { room?: string; cursor?: string | null; limit?: number } = {}) => {
    const params = new URLSearchParams({ q })
    if (options.room) params.set('room', options.room)
    if (options.cursor) params.set('cursor', options.cursor)
    if (options.limit !== undefined) params.set('limit', String(options.limit))
    return request<SearchPage>('GET', `/api/search?${params.toString()}`)
  },

  adminStatus: () => request<ServerStatus>('GET', '/api/admin/status'),

  roomRestrictions: (slug: string) =>
    request<{ restrictions: RoomRestriction[] }>('GET', `${room(slug)}/moderation`),
  /** Mute a user in the room (`mutes`) or remove them from it (`removals`) for a time. */
  restrict: (slug: string, kind: 'mutes' | 'removals', username: string, durationS: number) =>
    request<{ restriction: RoomRestriction }>('POST', `${room(slug)}/${kind}`, {
      username,
      duration_s: durationS,
    }),
  lift: (slug: string, kind: 'mutes' | 'removals', username: string) =>
    request<void>('DELETE', `${room(slug)}/${kind}/${encodeURIComponent(username)}`),
  adminUsers: (q: string, cursor: string | null) => {
    const params = new URLSearchParams({ limit: '50' })
    if (q !== '') params.set('q', q)
    if (cursor !== null) params.set('cursor', cursor)
    return request<AdminUserPage>('GET', `/api/admin/users?${params.toString()}`)
  },
  ban: (username: string, durationS: number | null, reason: string) =>
    request<void>('POST', '/api/admin/bans', { username, duration_s: durationS, reason }),
  unban: (username: string) =>
    request<void>('DELETE', `/api/admin/bans/${encodeURIComponent(username)}`),
  moderationLog: (before: number | null) =>
    request<ModerationPage>(
      'GET',
      `/api/admin/moderation?limit=50${before === null ? '' : `&before=${before}`}`,
    ),
}
