/*
 * hist.c: the latency histogram's cold half: reset, merge and quantiles.
 * Adding a value is inline in bench.h because it runs once per delivery.
 * The buckets are log-linear (HdrHistogram's idea with a fixed 5-bit
 * mantissa): constant relative error over nanoseconds to minutes, a fixed
 * size that travels over a pipe as it is, and merging is addition.
 */
#include <stdint.h>
#include <string.h>

#include "bench.h"

void
hist_init(struct hist *h)
{
	memset(h, 0, sizeof *h);
	h->min = UINT64_MAX;
}

void
hist_merge(struct hist *to, const struct hist *from)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		to->b[i] += from->b[i];
	to->count += from->count;
	if (from->min < to->min)
		to->min = from->min;
	if (from->max > to->max)
		to->max = from->max;
}

/* The largest value that falls into bucket i. */
static uint64_t
hist_bucket_top(unsigned i)
{
	unsigned group = i / HIST_SUB, sub = i % HIST_SUB, shift;

	if (group == 0)
		return sub;
	shift = group - 1;
	return (((uint64_t)(HIST_SUB + sub) + 1) << shift) - 1;
}

uint64_t
hist_quantile(const struct hist *h, double q)
{
	uint64_t want, seen = 0, top;

	if (h->count == 0)
		return 0;
	/* The rank of the quantile, at least the first value. */
	want = (uint64_t)(q * (double)h->count + 0.999999);
	if (want < 1)
		want = 1;
	if (want > h->count)
		want = h->count;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			top = hist_bucket_top(i);
			if (top > h->max)
				top = h->max;
			if (top < h->min)
				top = h->min;
			return top;
		}
	}
	return h->max;
}
