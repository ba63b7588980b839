/* Incremental decoder: frames packets out of a byte stream held in a
 * caller-supplied buffer, decoding whole packets in place (zero copy). A
 * PUBLISH too large for the buffer is streamed: its fixed and variable header
 * stay at the front of the buffer (so the topic stays valid for every piece)
 * and payload bytes pass through the rest. */
#include "mqttc/decoder.h"

#include <string.h>

int mqttc_decoder_init(mqttc_decoder *d, uint8_t *buf, size_t cap, uint32_t max_packet,
                       bool stream)
{
    if (d == NULL || buf == NULL || cap < 16) {
        return MQTTC_ERR_INVALID_ARG;
    }
    memset(d, 0, sizeof *d);
    d->buf = buf;
    d->cap = cap;
    d->max_packet = max_packet ? max_packet : MQTTC_MAX_REMAINING_LENGTH + MQTTC_MAX_FIXED_HEADER;
    d->stream = stream;
    d->decode = mqttc_decode_incoming;
    return 0;
}

void mqttc_decoder_reset(mqttc_decoder *d)
{
    d->start = d->end = 0;
    d->in_publish = false;
    d->hold = 0;
    d->payload_done = 0;
    d->error = 0;
}

/* Move unread bytes down to the first free position (after a held header). */
static void compact(mqttc_decoder *d)
{
    size_t base = d->in_publish ? d->hold : 0;
    if (d->start > base) {
        memmove(d->buf + base, d->buf + d->start, d->end - d->start);
        d->end -= d->start - base;
        d->start = base;
    }
}

uint8_t *mqttc_decoder_space(mqttc_decoder *d, size_t *n)
{
    compact(d);
    *n = d->cap - d->end;
    return d->buf + d->end;
}

void mqttc_decoder_commit(mqttc_decoder *d, size_t n)
{
    d->end += n <= d->cap - d->end ? n : d->cap - d->end;
}

size_t mqttc_decoder_feed(mqttc_decoder *d, const uint8_t *data, size_t len)
{
    size_t room;
    uint8_t *dst = mqttc_decoder_space(d, &room);
    size_t n = len < room ? len : room;
    if (n > 0) {
        memcpy(dst, data, n);
        d->end += n;
    }
    return n;
}

size_t mqttc_decoder_pending(const mqttc_decoder *d)
{
    return d->end - d->start;
}

static int fail(mqttc_decoder *d, int err)
{
    d->error = err;
    return err;
}

/* Hand out the payload bytes buffered so far as one piece. */
static int next_piece(mqttc_decoder *d, mqttc_packet *out)
{
    size_t avail = d->end - d->start;
    size_t left = d->pub.total_len - d->payload_done;
    size_t n = avail < left ? avail : left;
    if (n == 0) {
        return 0;
    }
    out->type = MQTTC_PUBLISH;
    out->flags = d->first & 0x0Fu;
    out->remaining_length = d->remaining;
    out->u.publish = d->pub;
    out->u.publish.payload = d->buf + d->start;
    out->u.publish.payload_len = n;
    out->u.publish.offset = d->payload_done;
    d->start += n;
    d->payload_done += n;
    if (d->payload_done == d->pub.total_len) {
        d->in_publish = false; /* the held header stays valid until the next call */
        d->hold = 0;
    }
    return 1;
}

/* The packet at `start` cannot fit the buffer: start streaming it if it is a
 * PUBLISH whose variable header fits. */
static int start_stream(mqttc_decoder *d, uint8_t first, size_t hl, uint32_t rem,
                        mqttc_packet *out)
{
    int vh;
    if (!d->stream || (first >> 4) != MQTTC_PUBLISH) {
        return fail(d, MQTTC_ERR_PACKET_TOO_LARGE);
    }
    compact(d); /* header to the front: it is held there while streaming */
    vh = mqttc_decode_publish_header(first, d->buf + hl, d->end - hl, rem, &d->pub);
    if (vh < 0) {
        return fail(d, vh);
    }
    if (vh == 0) { /* topic not complete yet; an error if it never can be */
        return d->end == d->cap ? fail(d, MQTTC_ERR_PACKET_TOO_LARGE) : 0;
    }
    if (hl + (size_t)vh >= d->cap) { /* no room left for any payload byte */
        return fail(d, MQTTC_ERR_PACKET_TOO_LARGE);
    }
    d->first = first;
    d->remaining = rem;
    d->hold = hl + (size_t)vh;
    d->start = d->hold;
    d->payload_done = 0;
    d->in_publish = true;
    return next_piece(d, out);
}

int mqttc_decoder_next(mqttc_decoder *d, mqttc_packet *out)
{
    uint8_t first;
    uint32_t rem;
    int hl, rc;
    size_t avail, total;

    if (d->error) {
        return d->error;
    }
    if (d->in_publish) {
        return next_piece(d, out);
    }
    avail = d->end - d->start;
    hl = mqttc_fixed_header_parse(d->buf + d->start, avail, &first, &rem);
    if (hl <= 0) {
        return hl < 0 ? fail(d, hl) : 0;
    }
    total = (size_t)hl + rem;
    if (total > d->max_packet) {
        return fail(d, MQTTC_ERR_PACKET_TOO_LARGE);
    }
    if (total > d->cap) {
        return start_stream(d, first, (size_t)hl, rem, out);
    }
    if (total > avail) {
        return 0;
    }
    rc = d->decode(first, d->buf + d->start + hl, rem, out);
    if (rc < 0) {
        return fail(d, rc);
    }
    d->start += total;
    return 1;
}
