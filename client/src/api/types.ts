/** Shapes of contract v1 (PRODUCT.md section 5). */

export interface User {
  id: number
  username: string
  display_name: string
  is_admin?: boolean
}

/** A page of a room's members, by username (GET /api/rooms/{slug}/members). */
export interface MemberPage {
  members: User[]
  has_more: boolean
}

export interface Room {
  slug: string
  title: string
  private: boolean
  online: number
  /** Extension of the Python server: you are a member (the room is in your room list). */
  joined: boolean
  /** Extension of the Python server: you own the room (and manage its members). */
  owned?: boolean
  /** Extension: 'dm' for a direct conversation (slug `dm.…`), whose `members` are its people. */
  kind?: 'room' | 'dm'
  members?: User[] | null
  /** Extension: your read mark here (the last message you read, on any device). */
  last_read?: string | null
  /** Extension: messages of others after `last_read` (at most 99; `unread_more`: 99+). */
  unread?: number
  unread_more?: boolean
  /** Extension: of those, the ones that mention you (`@username` or `@room`). */
  mentions?: number
}

/** A page of the room directory (GET /api/rooms), by slug. */
export interface RoomPage {
  rooms: Room[]
  /** Pass as `cursor` for the next page; null (or absent): the last page. */
  next_cursor?: string | null
}

/** What to list of the room directory. */
export interface RoomQuery {
  /** Only the rooms we are a member of (the sidebar). */
  joined?: boolean
  /** Only rooms whose slug or title holds this text. */
  q?: string
  cursor?: string | null
  limit?: number
}

/** What changed in the user's rooms (the `room` frame). */
export type RoomEventKind = 'created' | 'joined' | 'added' | 'left' | 'removed'

/** Extension of the Python server, in GET /api/me: the rules it checks input against. */
export interface ServerLimits {
  message_max_chars: number
  /** How long the server stores a resend of a message once (its client_id window). */
  resend_window_s?: number
}

/** A reaction on a message: one emoji, how many people gave it, and whether we did. */
export interface Reaction {
  emoji: string
  count: number
  me: boolean
}

/** The message a reply quotes (a deleted one has an empty body). */
export interface ReplyPreview {
  id: string
  user: User
  /** Its first 200 characters. */
  body: string
  deleted: boolean
}

export interface Message {
  id: string
  room: string
  user: User
  body: string
  created_at: string
  client_id?: string | null
  /** Issue 12: when the body was last edited (null: never). */
  edited_at?: string | null
  /** Issue 12: a tombstone; its body is empty. */
  deleted?: boolean
  /** Issue 12: in the order of each emoji's first reaction. */
  reactions?: Reaction[]
  reply_to?: string | null
  reply?: ReplyPreview | null
}

/** What happened to a message after it was sent: an entry of the room's stream of its own. */
export type MessageChangeType = 'edit' | 'delete' | 'react' | 'unreact'

export interface MessageChange {
  type: MessageChangeType
  /** Its own stream id: the resume cursor moves over it like over a message id. */
  id: string
  room: string
  /** The id of the message it changes. */
  target: string
  /** Who did it (for a delete, who deleted). */
  user: User
  created_at: string
  /** edit: the new body. */
  body?: string
  /** react, unreact: the emoji. */
  emoji?: string
  /** delete: by someone other than the author (the room owner or an admin). */
  moderated?: boolean
  client_id?: string | null
}

export interface MessagePage {
  messages: Message[]
  has_more: boolean
}

/** The page around one message (GET /api/rooms/{slug}/messages?around=<id>). */
export interface AroundPage extends MessagePage {
  /** Newer messages exist (`has_more`: older ones do). */
  has_newer: boolean
}

/** One message found by GET /api/search, with its room and matched ranges. */
export interface SearchHit {
  message: Message
  room: { slug: string; title: string; private: boolean; kind: 'room' | 'dm' }
  /** [start, end) of the matched words in the body, in UTF-16 code units. */
  highlights: [number, number][]
}

export interface SearchPage {
  results: SearchHit[]
  /** Pass as `cursor` (with the same q) for the next page; null: the last. */
  next_cursor: string | null
}

export interface RoomCounters {
  stream_length: number
  backlog: number
  pending: number
  archived: number
  dead_letters: number
  oldest_unarchived_age_s: number | null
  /** Archived rows per second; the Python server names it `archived_per_s`. */
  rows_per_s?: number
  archived_per_s?: number
}

export interface ServerStatus {
  rooms: Record<string, RoomCounters>
  total: RoomCounters
  redis: {
    appendonly: boolean
    maxmemory_policy: string
    persistence_ok: boolean
    problems?: string[]
  }
}

export type ClientFrame =
  | { type: 'subscribe'; room: string; since?: string }
  | { type: 'unsubscribe'; room: string }
  | { type: 'send'; room: string; body: string; client_id: string; reply_to?: string }
  | { type: 'edit'; room: string; client_id: string; target: string; body: string }
  | { type: 'delete'; room: string; client_id: string; target: string; reason?: string }
  | { type: 'react' | 'unreact'; room: string; client_id: string; target: string; emoji: string }
  | { type: 'typing'; room: string }
  | { type: 'ping' }
  | { type: 'read'; room: string; id: string }

export type ServerFrame =
  | { type: 'subscribed'; room: string; last_id: string | null; online: User[] }
  | ({ type: 'message' } & Message)
  | MessageChange
  | { type: 'ack'; client_id: string; id: string }
  | { type: 'presence'; room: string; user: User; state: 'join' | 'leave' }
  | { type: 'typing'; room: string; user: User }
  | { type: 'pong' }
  | { type: 'resync'; room: string }
  | { type: 'read'; room: string; id: string }
  | { type: 'room'; event: RoomEventKind; room: Room }
  /** You are muted in the room until `until` (null: no longer muted). */
  | { type: 'muted'; room: string; until: string | null }
  | {
      type: 'error'
      code: string
      message: string
      client_id?: string
      retry_after_ms?: number
      /** When a mute (`muted`) or a removal (`removed`) ends. */
      until?: string
      /** The room of a refused subscribe, unsubscribe or typing frame, or the room whose
       *  subscription the server ended (forbidden, unavailable). */
      room?: string
    }

/** A user as the admin page lists them. */
export interface AdminUser extends User {
  banned: boolean
  /** When the ban ends; null: for good (or not banned). */
  banned_until: string | null
}

export interface AdminUserPage {
  users: AdminUser[]
  next_cursor: string | null
}

export type ModerationAction = 'mute' | 'unmute' | 'remove' | 'unremove' | 'ban' | 'unban' | 'delete'

export interface ModerationEntry {
  id: number
  action: ModerationAction
  actor: User
  target: User | null
  room: string | null
  message_id: string | null
  reason: string
  until: string | null
  created_at: string
}

export interface ModerationPage {
  entries: ModerationEntry[]
  next_cursor: number | null
}

/** A mute or a removal in force in a room. */
export interface RoomRestriction {
  user: User
  kind: 'mute' | 'remove'
  until: string
}
