// TypeScript declarations of the Arena browser SDK (arena.js), served by
// every Arena node at /sdk/arena.d.ts.

/** The WebSocket subprotocol of the protocol version this SDK speaks. */
export const SUBPROTOCOL: 'arena.v1.json';
/** The SDK version, sent as the connect frame's name ("arena-js/VERSION"). */
export const VERSION: string;

/** A message's place in its room. */
export interface Position {
  epoch: number;
  seq: number;
}

/** Error codes of the protocol, plus the SDK's own. */
export type ErrorCode =
  | 'bad_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_subscribed'
  | 'rate_limited'
  | 'too_large'
  | 'unavailable'
  | 'internal'
  | 'closed'
  | 'timeout'
  | 'aborted'
  | 'connect_failed';

/** An error reported by the server or by the SDK. */
export class ArenaError extends Error {
  constructor(code: ErrorCode | string, message?: string, retryMs?: number);
  readonly name: 'ArenaError';
  readonly code: ErrorCode | string;
  /** With rate_limited: how long to wait before trying again, in ms. */
  readonly retryMs: number;
}

/** A message of a room. */
export interface Message<T = unknown> {
  room: string;
  epoch: number;
  seq: number;
  /** When the room's home sequenced it, in ms since the Unix epoch. */
  ts: number;
  /** The publisher's user id (or API key name). */
  from: string;
  /** The idempotency key the publisher gave. */
  key?: string;
  data: T;
}

/** The server's confirmation that a message is durable. */
export interface Ack {
  room: string;
  epoch: number;
  seq: number;
  ts: number;
  /** The key had been used already in this room: nothing was published again. */
  dup: boolean;
  /** The idempotency key used (given or generated). */
  key: string;
}

/** The current connection, as the connected reply described it. */
export interface SessionInfo {
  /** The edge's WebSocket URL. */
  url: string;
  session: string;
  user: string;
  node: string;
  region: string;
  /** When the token expires; null if it does not. */
  expires: Date | null;
}

/** An edge listed by GET /v1/edges, with its measured round trip. */
export interface MeasuredEdge {
  node: string;
  region: string;
  url: string;
  /** Best round trip of GET /healthz in ms; Infinity if it did not answer. */
  rtt: number;
}

/** A room the user has a read position in (Arena.rooms). */
export interface UserRoom {
  room: string;
  head: Position;
  read: Position;
  /** Messages after read up to head. */
  unread: number;
}

/** A user present in a room. */
export interface Member {
  user: string;
  conns: number;
}

export interface ResetEvent {
  room: string;
  /** The last position delivered (null if none was). */
  from: Position | null;
  /** The first position delivered next: the messages between are gone. */
  to: Position;
}

export interface PresenceEvent {
  room: string;
  user: string;
}

export interface ReceiptEvent {
  room: string;
  user: string;
  seq: number;
  status: 'delivered' | 'read';
}

export interface DisconnectEvent {
  url: string;
  code: number;
  reason: string;
}

export interface ReconnectEvent {
  reason: string;
  edges: string[];
}

export interface ConnectOptions {
  /** A JWT or API key, sent in the connect frame; or a function returning one (called on each connection). */
  token?: string | (() => string | Promise<string>);
  /** Client software name; default "arena-js/VERSION". */
  name?: string;
  /** More edges to fall back to (Arena.connect only). */
  edges?: string[];
  /** Bound on each connection attempt, in ms; default 10000. */
  connectTimeout?: number;
  /** Reconnection backoff bounds in ms; default 100 and 5000. */
  reconnectMin?: number;
  reconnectMax?: number;
  /** Ping after this many ms of silence, reconnect after twice as many; default 20000, 0 or less disables. */
  keepAlive?: number;
  /** Largest batched WebSocket message sent, in bytes; default 32768. */
  maxBatch?: number;
  /** connectNearest: timed GET /healthz per edge (after one warm-up); default 3. */
  probes?: number;
  /** connectNearest: timeout of one probe in ms; default 2000. */
  probeTimeout?: number;
  /** A WebSocket constructor, for runtimes without a global one. */
  WebSocket?: typeof WebSocket;
}

export interface CallOptions {
  /** Abort the call (it may still take effect on the server). */
  signal?: AbortSignal;
  /** Give up after this many ms. */
  timeout?: number;
}

export interface PublishOptions extends CallOptions {
  /** Idempotency key, 1 to 64 bytes; default: a fresh one. */
  key?: string;
  /** Wait out rate_limited and try again instead of rejecting. */
  retryRateLimited?: boolean;
}

export interface HistoryOptions extends CallOptions {
  /** Messages before this seq. */
  before?: number;
  /** Messages after this seq; 0: from the oldest retained. */
  after?: number;
  /** At most this many, 1 to 1000; default 50. */
  limit?: number;
}

export interface SubscribeOptions<T = unknown> {
  /** Resume after this position. */
  since?: Position;
  /** Also receive joins, leaves and receipts. */
  presence?: boolean;
  /** Attached before any message can arrive. */
  onMessage?: (m: Message<T>) => void;
  onReset?: (e: ResetEvent) => void;
  onEvent?: (e: ({ type: 'join' | 'leave' } & PresenceEvent) | ({ type: 'receipt' } & ReceiptEvent)) => void;
  /** Give up waiting for the server's confirmation. */
  signal?: AbortSignal;
}

interface SubscriptionEvents<T> {
  message: Message<T>;
  reset: ResetEvent;
  join: PresenceEvent;
  leave: PresenceEvent;
  receipt: ReceiptEvent;
  error: ArenaError;
  close: ArenaError | null;
}

/** A subscription to one room: its messages in order, each once, across reconnections. */
export class Subscription<T = unknown> {
  readonly arena: Arena;
  readonly room: string;
  readonly presence: boolean;
  /** The last message delivered; null until one is known. */
  readonly position: Position | null;
  /** The room's head at the last subscribed reply. */
  readonly head: Position | null;
  readonly closed: boolean;
  /** Why the server refused the subscription; null otherwise. */
  readonly error: ArenaError | null;
  /** Adds a handler; returns a function that removes it. */
  on<K extends keyof SubscriptionEvents<T>>(type: K, fn: (e: SubscriptionEvents<T>[K]) => void): () => void;
  off<K extends keyof SubscriptionEvents<T>>(type: K, fn: (e: SubscriptionEvents<T>[K]) => void): void;
  /** Ends the subscription here and on the server. Idempotent. */
  unsubscribe(): Promise<void>;
  markDelivered(seq: number): boolean;
  markRead(seq: number): boolean;
}

interface ArenaEvents {
  connect: SessionInfo;
  disconnect: DisconnectEvent;
  reconnect: ReconnectEvent;
  receipt: ReceiptEvent;
  error: ArenaError | Error;
  close: ArenaError | null;
}

/** A client of an Arena cluster: one WebSocket to an edge, replaced when it is lost. */
export class Arena {
  /** Connects to the node at url (ws(s) or http(s); /v1/ws is added when there is no path). */
  static connect(url: string, opts?: ConnectOptions): Promise<Arena>;
  /** Measures the edges the node at seedURL lists and connects to the fastest; fails over to the next. */
  static connectNearest(seedURL: string, opts?: ConnectOptions): Promise<Arena>;

  readonly opts: Required<Omit<ConnectOptions, 'token' | 'edges' | 'WebSocket'>> & ConnectOptions;
  /** WebSocket URLs of the known edges, best first. */
  readonly edges: string[];
  /** Edges with their round trips, when made by connectNearest. */
  readonly measured: MeasuredEdge[] | null;
  /** The current connection; null while reconnecting or closed. */
  readonly info: SessionInfo | null;
  readonly connected: boolean;
  readonly closed: boolean;
  /** Why the client stopped by itself (unauthorized, ...); null otherwise. */
  readonly error: ArenaError | null;

  on<K extends keyof ArenaEvents>(type: K, fn: (e: ArenaEvents[K]) => void): () => void;
  off<K extends keyof ArenaEvents>(type: K, fn: (e: ArenaEvents[K]) => void): void;

  subscribe<T = unknown>(room: string, opts?: SubscribeOptions<T>): Promise<Subscription<T>>;
  publish(room: string, data: unknown, opts?: PublishOptions): Promise<Ack>;
  history<T = unknown>(room: string, opts?: HistoryOptions): Promise<{ epoch: number; msgs: Message<T>[] }>;
  /** Users with a subscribed connection in room. Rejects with ArenaError "unavailable" when the node does not offer presence; not retried. */
  presence(room: string, opts?: CallOptions): Promise<Member[]>;
  /** The rooms this user has read positions in, by room name. */
  rooms(opts?: CallOptions): Promise<UserRoom[]>;
  /** Sends a delivery receipt; false when not connected (nothing sent). */
  markDelivered(room: string, seq: number): boolean;
  /** Sends a read receipt up to seq; false when not connected (nothing sent). */
  markRead(room: string, seq: number): boolean;
  /** Round trip of a ping frame in ms. */
  ping(opts?: CallOptions): Promise<number>;
  /** Sends a fresh token; resolves with its expiry. */
  refresh(token: string, opts?: CallOptions): Promise<Date | null>;
  /** Closes the connection and every subscription. Idempotent. */
  close(): void;
}

/** Lists the edges of the node at seedURL and measures each, fastest first. */
export function measureEdges(seedURL: string, opts?: Pick<ConnectOptions, 'probes' | 'probeTimeout'>): Promise<MeasuredEdge[]>;
/** Splits one WebSocket message into frames. */
export function parseFrames(text: string): Array<{ op: string; [field: string]: unknown }>;
/** Reports whether room is a valid room name. */
export function validRoom(room: string): boolean;
/** A node address as its WebSocket endpoint. */
export function wsURL(url: string): string;
/** A node address as its HTTP base URL. */
export function httpURL(url: string): string;

export default Arena;
