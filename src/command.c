/*
 * command.c: the registry of slash commands. Scripts and plugins register
 * commands by name; a message starting with '/' from a room member is
 * looked up here. The core registers none itself, so until a script does,
 * every command answers unknown_command.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "parley.h"

struct command {
	char *name;
	char *help;
	command_fn fn;
	void *arg;
};

static struct map command_map;

void
command_register(const char *name, const char *help, command_fn fn,
    void *arg)
{
	struct command *cmd = xcalloc(1, sizeof *cmd);
	struct command *old;

	cmd->name = xstrdup(name);
	cmd->help = xstrdup(help ? help : "");
	cmd->fn = fn;
	cmd->arg = arg;
	old = map_remove(&command_map, name, strlen(name));
	if (old != NULL) {
		free(old->name);
		free(old->help);
		free(old);
	}
	map_add(&command_map, name, strlen(name), cmd);
}

enum proto_err
command_run(struct client *c, struct room *r, const json_t *id,
    const char *text, size_t len)
{
	struct command_ctx ctx = { .client = c, .room = r, .id = id };
	const char *p = text + 1, *end = text + len;
	size_t namelen = 0;
	struct command *cmd;
	enum proto_err e;
	char *args;

	while (p + namelen < end && p[namelen] != ' ' && p[namelen] != '\t' &&
	    p[namelen] != '\n')
		namelen++;
	cmd = map_find(&command_map, p, namelen);
	if (cmd == NULL)
		return PROTO_ERR_UNKNOWN_COMMAND;
	p += namelen;
	if (p < end)
		p++;
	args = xstrndup(p, (size_t)(end - p));
	ctx.args = args;
	e = cmd->fn(&ctx, cmd->arg);
	free(args);
	return e;
}

void
command_free_all(void)
{
	size_t pos = 0;
	void *v;

	while (map_next(&command_map, &pos, NULL, &v)) {
		struct command *cmd = v;
		free(cmd->name);
		free(cmd->help);
		free(cmd);
	}
	map_free(&command_map);
}
