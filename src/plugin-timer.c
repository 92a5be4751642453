/*
 * plugin-timer.c: plugins on the event loop: timers and watched file
 * descriptors (since ABI 1.1), kept per plugin so that everything stops
 * when the plugin goes. Also the host functions of this concern.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "parley.h"
#include "plugin-host.h"

static void
plugin_timer_unlink(struct plugin_timer *t)
{
	for (struct plugin_timer **pp = &t->p->timers; *pp != NULL;
	     pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			return;
		}
	}
}

static void
plugin_timer_fire(struct loop_timer *lt)
{
	struct plugin_timer *t = (struct plugin_timer *)lt;

	t->firing = true;
	t->fn(plugin_ctx(t->p), t->id, t->arg);
	t->firing = false;
	if (t->cancelled || t->interval == 0) {
		plugin_timer_unlink(t);
		free(t);
		return;
	}
	loop_timer_set(&t->lt, t->interval, plugin_timer_fire);
}

static uint64_t
plugin_timer_add(struct plugin *p, uint64_t delay, uint64_t interval,
    parley_timer_fn fn, void *arg)
{
	struct plugin_timer *t;

	if (fn == NULL) {
		log_error(p->owner, "timer_add: no function");
		return 0;
	}
	t = xcalloc(1, sizeof *t);
	t->p = p;
	t->id = ++p->next_id;
	t->delay = delay;
	t->interval = interval;
	t->fn = fn;
	t->arg = arg;
	t->next = p->timers;
	p->timers = t;
	if (!p->info_only)
		loop_timer_set(&t->lt, delay, plugin_timer_fire);
	return t->id;
}

static int
plugin_timer_cancel(struct plugin *p, uint64_t id)
{
	struct plugin_timer *t;

	for (t = p->timers; t != NULL; t = t->next) {
		if (t->id == id && !t->cancelled)
			break;
	}
	if (t == NULL)
		return -1;
	if (t->firing) {
		/* plugin_timer_fire frees it when the callback returns. */
		t->cancelled = true;
		return 0;
	}
	loop_timer_cancel(&t->lt);
	plugin_timer_unlink(t);
	free(t);
	return 0;
}

void
plugin_timers_stop(struct plugin *p)
{
	while (p->timers != NULL) {
		struct plugin_timer *t = p->timers;
		p->timers = t->next;
		loop_timer_cancel(&t->lt);
		free(t);
	}
}

/* ---- File descriptors (since 1.1) */

static struct plugin_watch *
host_watch_find(struct plugin *p, uint64_t id)
{
	for (struct plugin_watch *w = p->watches; w != NULL; w = w->next) {
		if (w->id == id && id != 0)
			return w;
	}
	return NULL;
}

static void
host_watch_ready(struct loop_fd *lfd, uint32_t ev)
{
	struct plugin_watch *w = (struct plugin_watch *)lfd;
	unsigned ready = 0;

	/* An error or hang-up wakes whichever side is waiting, so that the
	 * plugin's read or write sees it. */
	if ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) &&
	    (w->events & PARLEY_FD_READ))
		ready |= PARLEY_FD_READ;
	if ((ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) &&
	    (w->events & PARLEY_FD_WRITE))
		ready |= PARLEY_FD_WRITE;
	if (ready != 0 && w->id != 0)
		w->fn(plugin_ctx(w->p), w->id, w->fd, ready, w->arg);
}

/* Puts w's events into the epoll set; an idle watch leaves the set, so
 * that an error on a descriptor nobody waits on cannot spin the loop. */
static int
host_watch_apply(struct plugin_watch *w)
{
	uint32_t ev = 0;

	if (w->events & PARLEY_FD_READ)
		ev |= EPOLLIN;
	if (w->events & PARLEY_FD_WRITE)
		ev |= EPOLLOUT;
	if (ev == 0) {
		if (w->added)
			loop_fd_remove(&w->lfd);
		w->added = false;
		return 0;
	}
	if (w->added)
		return loop_fd_mod(&w->lfd, ev);
	if (loop_fd_add(&w->lfd, w->fd, ev, host_watch_ready) == -1) {
		w->lfd.fd = -1;
		return -1;
	}
	w->added = true;
	return 0;
}

static uint64_t
host_fd_watch(
    parley_ctx *ctx, int fd, unsigned events, parley_fd_fn fn, void *arg)
{
	struct plugin *p = plugin_of(ctx);
	struct plugin_watch *w;

	if (p->info_only || fn == NULL || fd < 0) {
		if (!p->info_only)
			log_warn(p->owner,
			    "fd_watch: bad descriptor or "
			    "callback");
		return 0;
	}
	for (w = p->watches; w != NULL && w->id != 0; w = w->next)
		;
	if (w == NULL) {
		w = xcalloc(1, sizeof *w);
		w->lfd.fd = -1;
		w->p = p;
		w->next = p->watches;
		p->watches = w;
	}
	w->id = ++p->next_id;
	w->fd = fd;
	w->events = events & (PARLEY_FD_READ | PARLEY_FD_WRITE);
	w->fn = fn;
	w->arg = arg;
	w->added = false;
	if (host_watch_apply(w) == -1) {
		log_warn(p->owner, "fd_watch: epoll_ctl on %d: %s", fd,
		    strerror(errno));
		w->id = 0;
		return 0;
	}
	return w->id;
}

static int
host_fd_update(parley_ctx *ctx, uint64_t id, unsigned events)
{
	struct plugin_watch *w = host_watch_find(plugin_of(ctx), id);

	if (w == NULL)
		return -1;
	w->events = events & (PARLEY_FD_READ | PARLEY_FD_WRITE);
	if (host_watch_apply(w) == -1) {
		log_warn(w->p->owner, "fd_update: epoll_ctl on %d: %s", w->fd,
		    strerror(errno));
		return -1;
	}
	return 0;
}

static int
host_fd_unwatch(parley_ctx *ctx, uint64_t id)
{
	struct plugin_watch *w = host_watch_find(plugin_of(ctx), id);

	if (w == NULL)
		return -1;
	w->events = 0;
	host_watch_apply(w);
	w->id = 0;
	w->fn = NULL;
	return 0;
}

void
plugin_watches_free(struct plugin *p)
{
	while (p->watches != NULL) {
		struct plugin_watch *w = p->watches;
		p->watches = w->next;
		if (w->added)
			loop_fd_remove(&w->lfd);
		free(w);
	}
}

static uint64_t
host_timer_add(parley_ctx *ctx, uint64_t delay_ms, uint64_t interval_ms,
    parley_timer_fn fn, void *arg)
{
	return plugin_timer_add(plugin_of(ctx), delay_ms, interval_ms, fn, arg);
}

static int
host_timer_cancel(parley_ctx *ctx, uint64_t id)
{
	return plugin_timer_cancel(plugin_of(ctx), id);
}

void
plugin_timer_host(struct parley_host *h)
{
	h->timer_add = host_timer_add;
	h->timer_cancel = host_timer_cancel;
	h->fd_watch = host_fd_watch;
	h->fd_update = host_fd_update;
	h->fd_unwatch = host_fd_unwatch;
}
