/* SPDX-License-Identifier: MIT */
/* frame.h - length-prefixed frames on every host<->guest virtio-serial port */
#ifndef GONDOLIN_PROTO_FRAME_H
#define GONDOLIN_PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_HDR_LEN		9		/* u32 len, u8 type, u32 id (big endian) */
#define FRAME_MAX_PAYLOAD	(256 * 1024)	/* hard ceiling on either side */
#define FRAME_CHUNK		(64 * 1024)	/* largest bulk chunk a sender emits */

/* Message types. Host -> guest below 0x40, guest -> host from 0x40. */
enum frame_type {
	FRAME_EXEC_START	= 0x01,	/* CBOR map, see docs/protocol.md */
	FRAME_EXEC_STDIN	= 0x02,	/* raw bytes, non-empty */
	FRAME_EXEC_STDIN_EOF	= 0x03,	/* empty */
	FRAME_EXEC_CREDIT	= 0x04,	/* CBOR {stdout=u, stderr=u} */
	FRAME_EXEC_RESIZE	= 0x05,	/* CBOR {rows=u, cols=u} */
	FRAME_EXEC_SIGNAL	= 0x06,	/* CBOR {signal=u} */
	FRAME_PING		= 0x07,	/* raw bytes, echoed as PONG */
	FRAME_CLOCK_SET		= 0x08,	/* CBOR {ns=u}: the host's wall clock */

	FRAME_HELLO		= 0x40,	/* CBOR {version=u, agent=t, kernel=t, caps=[t]} */
	FRAME_EXEC_STARTED	= 0x41,	/* CBOR {pid=u, stdin_credit=u} */
	FRAME_EXEC_STDOUT	= 0x42,	/* raw bytes */
	FRAME_EXEC_STDERR	= 0x43,	/* raw bytes */
	FRAME_EXEC_STDIN_CREDIT	= 0x44,	/* CBOR {bytes=u} */
	FRAME_EXEC_EXIT		= 0x45,	/* CBOR {code=u, signal=u?, timed_out=b} */
	FRAME_ERROR		= 0x46,	/* CBOR {code=t, message=t} */
	FRAME_PONG		= 0x47,	/* raw bytes */
};

#define PROTO_VERSION	1

/**
 * struct frame - one decoded frame; payload points into the reader's buffer
 * and stays valid until the next frame_reader_* call
 */
struct frame {
	uint8_t type;
	uint32_t id;
	const uint8_t *payload;
	size_t len;
};

/**
 * struct frame_reader - reassembles frames from arbitrary byte chunks
 * @buf:	storage, FRAME_HDR_LEN + max_payload bytes, never grows
 * @cap:	size of @buf
 * @start:	first unconsumed byte
 * @end:	one past the last byte received
 * @skip:	bytes of an oversized frame still to be discarded
 * @max_payload: largest payload accepted (<= FRAME_MAX_PAYLOAD)
 */
struct frame_reader {
	uint8_t *buf;
	size_t cap, start, end;
	uint64_t skip;
	size_t max_payload;
};

/*
 * frame_reader_init returns 0, -EINVAL (max_payload 0) or -ENOMEM.
 * frame_reader_next returns 1 with a frame, 0 when more bytes are needed,
 * -1 once for a frame above max_payload, whose bytes are then discarded.
 * frame_reader_feed returns the bytes it consumed; alternate it with next.
 */
int frame_reader_init(struct frame_reader *r, size_t max_payload);
void frame_reader_free(struct frame_reader *r);
uint8_t *frame_reader_space(struct frame_reader *r, size_t *avail);
void frame_reader_commit(struct frame_reader *r, size_t n);
size_t frame_reader_feed(struct frame_reader *r, const uint8_t *p, size_t n);
int frame_reader_next(struct frame_reader *r, struct frame *f);

void frame_header(uint8_t out[FRAME_HDR_LEN], uint8_t type, uint32_t id,
		  uint32_t payload_len);

#endif /* GONDOLIN_PROTO_FRAME_H */
