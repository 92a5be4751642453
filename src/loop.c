/*
 * loop.c: the event loop that owns the process: one epoll set for every
 * file descriptor (MHD's own epoll fd, upgraded sockets, signals), a binary
 * heap of timers, and before-sleep steps that batch work (output flushing,
 * freeing dead clients) once per iteration, as Redis's ae does.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "parley.h"

#define LOOP_MAX_EVENTS 256
#define LOOP_MAX_BEFORE_SLEEP 8

static int loop_epfd = -1;
static uint64_t loop_now_ms;
static bool loop_stop_flag;
static struct loop_timer **loop_heap;
static size_t loop_heap_len, loop_heap_cap;
static void (*loop_before[LOOP_MAX_BEFORE_SLEEP])(void);
static size_t loop_nbefore;

static uint64_t
loop_clock(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
loop_init(char **cause)
{
	loop_epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop_epfd == -1) {
		xasprintf(cause, "epoll_create1: %s", strerror(errno));
		return -1;
	}
	loop_now_ms = loop_clock(CLOCK_MONOTONIC);
	return 0;
}

void
loop_free(void)
{
	if (loop_epfd != -1)
		close(loop_epfd);
	loop_epfd = -1;
	free(loop_heap);
	loop_heap = NULL;
	loop_heap_len = loop_heap_cap = 0;
	loop_nbefore = 0;
}

uint64_t
loop_now(void)
{
	return loop_now_ms;
}

uint64_t
loop_wall_ms(void)
{
	return loop_clock(CLOCK_REALTIME);
}

int
loop_fd_add(struct loop_fd *lfd, int fd, uint32_t events, loop_fd_cb cb)
{
	struct epoll_event ev = { .events = events, .data.ptr = lfd };

	lfd->fd = fd;
	lfd->events = events;
	lfd->cb = cb;
	return epoll_ctl(loop_epfd, EPOLL_CTL_ADD, fd, &ev);
}

int
loop_fd_mod(struct loop_fd *lfd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = lfd };

	if (lfd->events == events)
		return 0;
	lfd->events = events;
	return epoll_ctl(loop_epfd, EPOLL_CTL_MOD, lfd->fd, &ev);
}

void
loop_fd_remove(struct loop_fd *lfd)
{
	if (lfd->fd == -1)
		return;
	epoll_ctl(loop_epfd, EPOLL_CTL_DEL, lfd->fd, NULL);
	lfd->fd = -1;
	lfd->cb = NULL;
}

/* Heap helpers: slot is index + 1 so that 0 means "not scheduled". */
static void
loop_heap_place(size_t i, struct loop_timer *t)
{
	loop_heap[i] = t;
	t->slot = i + 1;
}

static void
loop_heap_up(size_t i)
{
	struct loop_timer *t = loop_heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (loop_heap[parent]->when <= t->when)
			break;
		loop_heap_place(i, loop_heap[parent]);
		i = parent;
	}
	loop_heap_place(i, t);
}

static void
loop_heap_down(size_t i)
{
	struct loop_timer *t = loop_heap[i];

	for (;;) {
		size_t child = 2 * i + 1;
		if (child >= loop_heap_len)
			break;
		if (child + 1 < loop_heap_len &&
		    loop_heap[child + 1]->when < loop_heap[child]->when)
			child++;
		if (t->when <= loop_heap[child]->when)
			break;
		loop_heap_place(i, loop_heap[child]);
		i = child;
	}
	loop_heap_place(i, t);
}

void
loop_timer_cancel(struct loop_timer *t)
{
	size_t i;
	struct loop_timer *last;

	if (t->slot == 0)
		return;
	i = t->slot - 1;
	t->slot = 0;
	last = loop_heap[--loop_heap_len];
	if (i == loop_heap_len)
		return;
	loop_heap_place(i, last);
	loop_heap_up(i);
	loop_heap_down(last->slot - 1);
}

void
loop_timer_set(struct loop_timer *t, uint64_t ms, loop_timer_cb cb)
{
	loop_timer_cancel(t);
	t->when = loop_now_ms + ms;
	t->cb = cb;
	if (loop_heap_len == loop_heap_cap) {
		loop_heap_cap = loop_heap_cap ? loop_heap_cap * 2 : 64;
		loop_heap = xreallocarray(loop_heap, loop_heap_cap,
		    sizeof *loop_heap);
	}
	loop_heap_place(loop_heap_len++, t);
	loop_heap_up(loop_heap_len - 1);
}

void
loop_before_sleep(void (*fn)(void))
{
	PARLEY_ASSERT(loop_nbefore < LOOP_MAX_BEFORE_SLEEP);
	loop_before[loop_nbefore++] = fn;
}

static void
loop_run_timers(void)
{
	while (loop_heap_len > 0 && loop_heap[0]->when <= loop_now_ms) {
		struct loop_timer *t = loop_heap[0];
		loop_timer_cancel(t);
		t->cb(t);
	}
}

static int
loop_timeout(void)
{
	uint64_t delta;

	if (loop_heap_len == 0)
		return -1;
	if (loop_heap[0]->when <= loop_now_ms)
		return 0;
	delta = loop_heap[0]->when - loop_now_ms;
	return delta > 60000 ? 60000 : (int)delta;
}

int
loop_run(void)
{
	struct epoll_event events[LOOP_MAX_EVENTS];

	loop_stop_flag = false;
	while (!loop_stop_flag) {
		int n;

		for (size_t i = 0; i < loop_nbefore; i++)
			loop_before[i]();
		if (loop_stop_flag)
			break;
		n = epoll_wait(loop_epfd, events, LOOP_MAX_EVENTS,
		    loop_timeout());
		loop_now_ms = loop_clock(CLOCK_MONOTONIC);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			fatal("epoll_wait: %s", strerror(errno));
		}
		for (int i = 0; i < n; i++) {
			struct loop_fd *lfd = events[i].data.ptr;
			/* A callback earlier in this batch may have removed
			 * this fd; loop_fd_remove clears cb for that. */
			if (lfd->cb != NULL)
				lfd->cb(lfd, events[i].events);
		}
		loop_run_timers();
	}
	for (size_t i = 0; i < loop_nbefore; i++)
		loop_before[i]();
	return 0;
}

void
loop_stop(void)
{
	loop_stop_flag = true;
}

bool
loop_stopping(void)
{
	return loop_stop_flag;
}
