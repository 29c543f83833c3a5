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
}

export interface Message {
  id: string
  room: string
  user: User
  body: string
  created_at: string
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
  | { type: 'send'; room: string; body: string; client_id: string }
  | { type: 'typing'; room: string }
  | { type: 'ping' }
  | { type: 'read'; room: string; id: string }

export type ServerFrame =
  | { type: 'subscribed'; room: string; last_id: string | null; online: User[] }
  | ({ type: 'message' } & Message)
  | { type: 'ack'; client_id: string; id: string }
  | { type: 'presence'; room: string; user: User; state: 'join' | 'leave' }
  | { type: 'typing'; room: string; user: User }
  | { type: 'pong' }
  | { type: 'resync'; room: string }
  | { type: 'read'; room: string; id: string }
  | { type: 'room'; event: RoomEventKind; room: Room }
  | {
      type: 'error'
      code: string
      message: string
      client_id?: string
      retry_after_ms?: number
      /** The room of a refused subscribe, unsubscribe or typing frame, or the room whose
       *  subscription the server ended (forbidden, unavailable). */
      room?: string
    }
