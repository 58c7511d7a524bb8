import {
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  StorageType,
} from "@nats-io/jetstream";
import { connect, headers, type NatsConnection, nanos } from "@nats-io/transport-node";
import type { Logger } from "../log.ts";
import { type EventPosition, eventBody, type OutboxEvent } from "./outbox.ts";
import { eventSubject } from "./subject.ts";

/** Header carrying the event's xid (its position is (xid, Nats-Msg-Id)), read back when resuming. */
export const XID_HEADER = "Alert-Event-Xid";

/** What the relay needs from the message system. */
export interface EventPublisher {
  /** Connects (once) and makes sure the stream exists: creates it when allowed, else requires it. */
  prepare(): Promise<void>;
  /**
   * The position of the newest event stored under the subject prefix, or null when there is none.
   * The relay publishes one event at a time in read order, so what the stream holds of the prefix
   * is a prefix of that order, and everything up to this position is stored.
   */
  tail(): Promise<EventPosition | null>;
  /** Publishes one event; resolves on the stream's acknowledgement (`duplicate`: it held that id already). */
  publish(event: OutboxEvent): Promise<{ readonly duplicate: boolean }>;
  close(): Promise<void>;
}

/** Settings of {@link createNatsPublisher}. */
export interface NatsPublisherSettings {
  /** `nats://host:port`; user and password, or a token (as user alone), may be in the URL. */
  readonly url: string;
  readonly stream: string;
  readonly subjectPrefix: string;
  /** Create the stream when missing (else a missing stream is an error). */
  readonly createStream: boolean;
  /** The duplicate window of a stream this creates. */
  readonly duplicateWindowMs: number;
  /** How long a publish waits for its acknowledgement. */
  readonly publishTimeoutMs: number;
  /** The connection's name (in the server's monitoring). */
  readonly connectionName: string;
}

/** True when the subject filter `filter` matches every subject under `prefix` (`prefix.>`). */
export function filterCoversPrefix(filter: string, prefix: string): boolean {
  const f = filter.split(".");
  const p = prefix.split(".");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === ">") return true;
    if (i >= p.length) return false;
    if (f[i] !== "*" && f[i] !== p[i]) return false;
  }
  return false;
}

function credentials(url: string): { servers: string; user?: string; pass?: string; token?: string } {
  const u = new URL(url);
  const user = decodeURIComponent(u.username);
  const pass = decodeURIComponent(u.password);
  u.username = "";
  u.password = "";
  const servers = u.toString().replace(/\/$/, "");
  if (user && pass) return { servers, user, pass };
  if (user) return { servers, token: user };
  return { servers };
}

/**
 * The NATS JetStream {@link EventPublisher}: one connection that reconnects forever in the
 * background; a publish while it is away fails at its timeout, and the relay retries. Each event
 * goes to `<prefix>.<tenant token>` with its id as `Nats-Msg-Id`, so the stream drops a re-publish
 * within its duplicate window.
 */
export function createNatsPublisher(settings: NatsPublisherSettings, log: Logger): EventPublisher {
  let nc: NatsConnection | null = null;
  let js: JetStreamClient | null = null;
  let jsm: JetStreamManager | null = null;

  const connection = async (): Promise<{ js: JetStreamClient; jsm: JetStreamManager }> => {
    if (nc === null || nc.isClosed()) {
      const conn = await connect({
        ...credentials(settings.url),
        name: settings.connectionName,
        reconnect: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 1000,
        timeout: settings.publishTimeoutMs,
      });
      void (async () => {
        for await (const s of conn.status()) {
          if (s.type === "disconnect" || s.type === "reconnect")
            log.info({ status: s.type }, "nats_connection");
        }
      })().catch(() => undefined);
      nc = conn;
      js = jetstream(conn, { timeout: settings.publishTimeoutMs });
      jsm = await jetstreamManager(conn, { timeout: settings.publishTimeoutMs });
      log.info({ server: conn.getServer() }, "nats_connected");
    }
    return { js: js!, jsm: jsm! };
  };

  return {
    // Checked on every resume (after each failure too): a stream deleted meanwhile is made again.
    async prepare() {
      const { jsm } = await connection();
      const info = await jsm.streams.info(settings.stream).catch((err: unknown) => {
        if (err instanceof Error && /stream not found/i.test(err.message)) return null;
        throw err;
      });
      if (info === null) {
        if (!settings.createStream) {
          throw new Error(
            `JetStream stream ${settings.stream} does not exist (create it, capturing ${settings.subjectPrefix}.>, or let the relay create it)`,
          );
        }
        await jsm.streams.add({
          name: settings.stream,
          subjects: [`${settings.subjectPrefix}.>`],
          storage: StorageType.File,
          duplicate_window: nanos(settings.duplicateWindowMs),
        });
        log.info({ stream: settings.stream, subjects: `${settings.subjectPrefix}.>` }, "stream_created");
      } else if (!(info.config.subjects ?? []).some((f) => filterCoversPrefix(f, settings.subjectPrefix))) {
        throw new Error(
          `JetStream stream ${settings.stream} does not capture ${settings.subjectPrefix}.> (its subjects: ${(info.config.subjects ?? []).join(", ")})`,
        );
      }
    },

    async tail() {
      const { jsm } = await connection();
      const last = await jsm.streams.getMessage(settings.stream, {
        last_by_subj: `${settings.subjectPrefix}.>`,
      });
      if (last === null) return null;
      const id = last.header.get("Nats-Msg-Id");
      const xid = last.header.get(XID_HEADER);
      return id && xid ? { xid, id } : null;
    },

    async publish(event) {
      const { js } = await connection();
      const h = headers();
      h.set(XID_HEADER, event.xid);
      const ack = await js.publish(eventSubject(settings.subjectPrefix, event.tenantId), eventBody(event), {
        msgID: event.id,
        headers: h,
        timeout: settings.publishTimeoutMs,
      });
      return { duplicate: ack.duplicate };
    },

    async close() {
      const conn = nc;
      nc = null;
      if (conn && !conn.isClosed()) await conn.drain().catch(() => conn.close());
    },
  };
}
