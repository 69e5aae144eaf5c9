// Package js holds the Arena browser SDK: arena.js, a dependency-free ES
// module speaking the client protocol of PROTOCOL.md (connect with a
// token in the connect frame, subscriptions that resume by epoch and seq
// across reconnections, publishes with idempotency keys retried across
// reconnections, nearest-edge selection and failover), and arena.d.ts, its
// TypeScript declarations.
//
// This package only embeds the files so that every node can serve them
// (the edge serves FS at /sdk/); it imports nothing and is safe for
// concurrent use.
//
// Example (in a page served by any node):
//
//	import { Arena } from '/sdk/arena.js';
//	const arena = await Arena.connectNearest(location.origin, { token });
//	await arena.subscribe('chat:lobby', { onMessage: (m) => show(m) });
//	await arena.publish('chat:lobby', { text: 'hi' });
package js

import "embed"

// FS holds arena.js and arena.d.ts at its root.
//
//go:embed arena.js arena.d.ts
var FS embed.FS
