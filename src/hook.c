/*
 * hook.c: the hook chains. One chain per event holds every hook that Lua
 * scripts and native plugins registered for it, ordered by priority, so a
 * script and a plugin on the same event run in one well-defined order. The
 * chain decides the verdict; the caller (proto.c) acts on it. Chains are
 * short arrays: walking one is a few indirect calls on the hot path.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "parley.h"

struct hook {
	struct hook *next_dead;
	enum hook_event event;
	int priority;
	uint64_t order; /* insertion order, for equal priorities */
	char *owner;
	hook_fn fn;
	void *arg;
	uint64_t calls;
	uint64_t verdicts[HOOK_STOP + 1];
	uint64_t ns; /* time spent in fn */
};

static struct {
	struct hook **v;
	size_t n;
	size_t cap;
} hook_chains[HOOK_COUNT];
static uint64_t hook_next_order;
static unsigned hook_running;   /* depth of hook_run calls */
static struct hook *hook_grave; /* removed while running; freed after */

static const char *const hook_names[HOOK_COUNT] = {
	[HOOK_CONNECT] = "connect",
	[HOOK_USERNAME] = "username",
	[HOOK_CREATE_ROOM] = "create_room",
	[HOOK_JOIN] = "join",
	[HOOK_MESSAGE] = "message",
	[HOOK_LEAVE] = "leave",
	[HOOK_DISCONNECT] = "disconnect",
	[HOOK_SERVER_START] = "start",
	[HOOK_SERVER_STOP] = "stop",
	[HOOK_TICK] = "tick",
	[HOOK_POST] = "post",
	[HOOK_RENAMED] = "renamed",
	[HOOK_ROOM_CREATED] = "room_created",
	[HOOK_ROOM_REMOVED] = "room_removed",
	[HOOK_RELOAD] = "reload",
	[HOOK_TOKEN] = "token",
	[HOOK_TOPIC] = "topic",
	[HOOK_DELETE_MESSAGE] = "delete_message",
	[HOOK_DELETE_ROOM] = "delete_room",
	[HOOK_ROLE] = "role",
	[HOOK_MODERATION] = "moderation",
	[HOOK_DIRECT] = "direct",
	[HOOK_RESUME] = "resume",
};

static const char *const hook_verdict_names[HOOK_STOP + 1] = {
	[HOOK_PASS] = "pass",
	[HOOK_DENY] = "deny",
	[HOOK_MODIFY] = "modify",
	[HOOK_DROP] = "drop",
	[HOOK_STOP] = "stop",
};

const char *
hook_verdict_name(enum hook_verdict v)
{
	return v <= HOOK_STOP ? hook_verdict_names[v] : "?";
}

const char *
hook_event_name(enum hook_event ev)
{
	return ev < HOOK_COUNT ? hook_names[ev] : "?";
}

static bool
hook_before(const struct hook *a, const struct hook *b)
{
	if (a->priority != b->priority)
		return a->priority > b->priority;
	return a->order < b->order;
}

struct hook *
hook_add(enum hook_event ev, int priority, const char *owner, hook_fn fn,
    void *arg)
{
	struct hook *h = xcalloc(1, sizeof *h);
	size_t i;

	PARLEY_ASSERT(ev < HOOK_COUNT);
	h->event = ev;
	h->priority = priority;
	h->order = hook_next_order++;
	h->owner = xstrdup(owner);
	h->fn = fn;
	h->arg = arg;
	if (hook_chains[ev].n == hook_chains[ev].cap) {
		hook_chains[ev].cap = hook_chains[ev].cap ?
		    hook_chains[ev].cap * 2 : 4;
		hook_chains[ev].v = xreallocarray(hook_chains[ev].v,
		    hook_chains[ev].cap, sizeof *hook_chains[ev].v);
	}
	i = hook_chains[ev].n;
	while (i > 0 && hook_before(h, hook_chains[ev].v[i - 1])) {
		hook_chains[ev].v[i] = hook_chains[ev].v[i - 1];
		i--;
	}
	hook_chains[ev].v[i] = h;
	hook_chains[ev].n++;
	return h;
}

void
hook_remove(struct hook *h)
{
	struct hook **v = hook_chains[h->event].v;
	size_t n = hook_chains[h->event].n;

	for (size_t i = 0; i < n; i++) {
		if (v[i] == h) {
			memmove(&v[i], &v[i + 1], (n - i - 1) * sizeof *v);
			hook_chains[h->event].n--;
			break;
		}
	}
	if (hook_running > 0) {
		/* A chain being walked may still point at it. */
		h->fn = NULL;
		h->next_dead = hook_grave;
		hook_grave = h;
		return;
	}
	free(h->owner);
	free(h);
}

void
hook_remove_owner(const char *owner)
{
	for (int ev = 0; ev < HOOK_COUNT; ev++) {
		size_t i = 0;
		while (i < hook_chains[ev].n) {
			struct hook *h = hook_chains[ev].v[i];
			if (strcmp(h->owner, owner) == 0)
				hook_remove(h);
			else
				i++;
		}
	}
}

bool
hook_any(enum hook_event ev)
{
	return hook_chains[ev].n != 0;
}

void
hook_deny(struct hook_args *a, enum proto_err code, const char *reason)
{
	a->deny_code = code;
	free(a->deny_reason);
	a->deny_reason = reason ? xstrdup(reason) : NULL;
}

static void
hook_admit_clear(struct hook_args *a)
{
	for (size_t i = 0; a->admit_roles != NULL && a->admit_roles[i]; i++)
		free(a->admit_roles[i]);
	free(a->admit_roles);
	free(a->admit_account);
	free(a->admit_name);
	a->admit_roles = NULL;
	a->admit_account = a->admit_name = NULL;
}

void
hook_admit(struct hook_args *a, const char *account, const char *name,
    const char *const *roles)
{
	size_t n = 0;

	hook_admit_clear(a);
	a->admit_account = xstrdup(account);
	a->admit_name = name != NULL ? xstrdup(name) : NULL;
	while (roles != NULL && roles[n] != NULL)
		n++;
	if (n > 0) {
		a->admit_roles = xcalloc(n + 1, sizeof *a->admit_roles);
		for (size_t i = 0; i < n; i++)
			a->admit_roles[i] = xstrdup(roles[i]);
	}
}

void
hook_modify(struct hook_args *a, const char *text, size_t len)
{
	char *copy = xstrndup(text, len);

	free(a->new_text);
	a->new_text = copy;
	a->text = copy;
	a->text_len = len;
}

enum hook_verdict
hook_run(struct hook_args *a)
{
	size_t n = hook_chains[a->event].n;

	/* Walk a copy: a hook may add or remove hooks while it runs;
	 * removed ones stay allocated until the outermost run ends. */
	struct hook *stack[16], **v;
	enum hook_verdict result = HOOK_PASS;

	if (n == 0)
		return HOOK_PASS;
	v = n <= 16 ? stack : xreallocarray(NULL, n, sizeof *v);
	memcpy(v, hook_chains[a->event].v, n * sizeof *v);
	hook_running++;
	for (size_t i = 0; i < n; i++) {
		enum hook_verdict vd;
		struct timespec t0, t1;
		if (v[i]->fn == NULL)
			continue;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		vd = v[i]->fn(a, v[i]->arg);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		v[i]->calls++;
		v[i]->ns += (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL +
		    (t1.tv_nsec - t0.tv_nsec));
		if (vd <= HOOK_STOP)
			v[i]->verdicts[vd]++;
		if (vd == HOOK_PASS || vd == HOOK_MODIFY)
			continue;
		if (vd == HOOK_DENY) {
			if (a->deny_code == PROTO_OK)
				a->deny_code = PROTO_ERR_REJECTED;
			result = HOOK_DENY;
		} else if (vd == HOOK_DROP)
			result = HOOK_DROP;
		else if (vd == HOOK_STOP)
			a->stopped = true;
		break; /* DENY, DROP and STOP end the chain */
	}
	if (v != stack)
		free(v);
	if (--hook_running == 0) {
		while (hook_grave != NULL) {
			struct hook *h = hook_grave;
			hook_grave = h->next_dead;
			free(h->owner);
			free(h);
		}
	}
	return result;
}

void
hook_args_free(struct hook_args *a)
{
	free(a->new_text);
	free(a->deny_reason);
	a->new_text = a->deny_reason = NULL;
	hook_admit_clear(a);
}

void
hook_stats_each(void (*fn)(const char *owner, enum hook_event ev,
    uint64_t calls, const uint64_t *verdicts, uint64_t ns, void *arg),
    void *arg)
{
	for (int ev = 0; ev < HOOK_COUNT; ev++) {
		for (size_t i = 0; i < hook_chains[ev].n; i++) {
			struct hook *h = hook_chains[ev].v[i];
			fn(h->owner, (enum hook_event)ev, h->calls, h->verdicts,
			    h->ns, arg);
		}
	}
}

void
hook_free_all(void)
{
	for (int ev = 0; ev < HOOK_COUNT; ev++) {
		for (size_t i = 0; i < hook_chains[ev].n; i++) {
			free(hook_chains[ev].v[i]->owner);
			free(hook_chains[ev].v[i]);
		}
		free(hook_chains[ev].v);
		hook_chains[ev].v = NULL;
		hook_chains[ev].n = hook_chains[ev].cap = 0;
	}
}
