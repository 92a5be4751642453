/*
 * main.c: the command line, the start-up and shutdown order, and signals.
 * Start-up: read the configuration, bind the listening socket, create the
 * configured rooms, start libmicrohttpd inside the loop, run. SIGTERM and
 * SIGINT send close 1001 to every client and exit 0 once they are gone
 * (or after a bounded wait).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <nettle/version.h>
#include <microhttpd.h>

#include "parley.h"
#include "parley/plugin.h"

#define MAIN_SHUTDOWN_MS 3000
#define MAIN_TICK_MS 1000

static struct loop_fd main_signal_lfd = { .fd = -1 };
static struct config main_config;
static const char *main_config_path;   /* NULL: built-in defaults */
static const char *main_listen_arg;    /* --listen, kept over reloads */
static long main_port_arg = -1;        /* --port, likewise */
static unsigned main_start_max_connections; /* after the fd clamp */
static bool main_shutting_down;
static const char *main_pidfile;
static struct loop_timer main_tick_timer;
static bool main_stop_announced;

static void
main_usage(FILE *f)
{
	fprintf(f,
	    "usage: parleyd [options]\n"
	    "\n"
	    "  -c, --config FILE   read the configuration from FILE\n"
	    "                      (default: " PARLEY_SYSCONFDIR
	    "/parley.conf if present)\n"
	    "  -l, --listen ADDR   address to listen on (overrides the file)\n"
	    "  -p, --port N        port to listen on; 0 picks a free one and\n"
	    "                      prints it\n"
	    "      --check-config  check the configuration and exit\n"
	    "  -u, --user USER     run as USER after binding the sockets\n"
	    "  -g, --group GROUP   run as GROUP (default: USER's group)\n"
	    "      --pidfile FILE  write the process id to FILE\n"
	    "      --plugin-info FILE\n"
	    "                      print a plugin's ABI, name, version and\n"
	    "                      what it registers, and exit\n"
	    "  -V, --version       print the version and exit\n"
	    "  -h, --help          print this help and exit\n");
}

static void
main_version(void)
{
	lua_State *L = luaL_newstate();
	lua_Number lua = L != NULL ? lua_version(L) : 0;

	if (L != NULL)
		lua_close(L);
	printf("parleyd %s\n", PACKAGE_VERSION);
	printf("protocol %d, plugin ABI %d.%d\n", PARLEY_PROTOCOL_VERSION,
	    PARLEY_PLUGIN_ABI_MAJOR, PARLEY_PLUGIN_ABI_MINOR);
	/* The libraries as linked, which may be newer than built against. */
	printf("libmicrohttpd %s, jansson %s, Lua %d.%d, nettle %d.%d\n",
	    MHD_get_version(), jansson_version_str(), (int)lua / 100,
	    (int)lua % 100, nettle_version_major(), nettle_version_minor());
}

/* Binds and listens; returns the socket and fills the bound port. */
static int
main_listen(const char *addr, int port, int *bound, char **cause)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res, *ai;
	char service[16];
	int fd = -1, rc, one = 1;

	snprintf(service, sizeof service, "%d", port);
	rc = getaddrinfo(addr, service, &hints, &res);
	if (rc != 0) {
		xasprintf(cause, "%s: %s", addr, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, ai->ai_protocol);
		if (fd == -1)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 1024) == 0)
			break;
		close(fd);
		fd = -1;
	}
	if (fd == -1) {
		xasprintf(cause, "cannot listen on %s port %d: %s", addr, port,
		    strerror(errno));
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	{
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		char host[NI_MAXHOST], serv[NI_MAXSERV];
		getsockname(fd, (struct sockaddr *)&ss, &len);
		getnameinfo((struct sockaddr *)&ss, len, host, sizeof host,
		    serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV);
		*bound = atoi(serv);
	}
	return fd;
}

static char *main_admin_socket; /* the unix socket to remove at exit */

static void
main_remove_admin_socket(void)
{
	if (main_admin_socket != NULL)
		unlink(main_admin_socket);
}

/* Binds the admin API's unix socket at path with mode (octal text) and
 * owner ("USER[:GROUP]", may be NULL), before privileges are dropped. A
 * socket file left by a server that is gone is replaced; one that
 * answers is not. */
static int
main_listen_unix(
    const char *path, const char *mode, const char *owner, char **cause)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t m = (mode_t)strtoul(mode, NULL, 8), mask;
	int fd, rc;

	if (strlen(path) >= sizeof sun.sun_path) {
		xasprintf(cause, "%s: path too long", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			xasprintf(cause, "%s exists and is not a socket", path);
			return -1;
		}
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd != -1 &&
		    connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0) {
			close(fd);
			xasprintf(cause, "%s: another server answers there",
			    path);
			return -1;
		}
		if (fd != -1)
			close(fd);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1) {
		xasprintf(cause, "socket: %s", strerror(errno));
		return -1;
	}
	/* Nobody else may connect before the mode is set. */
	mask = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
	umask(mask);
	if (rc == -1 || chmod(path, m) == -1 || listen(fd, 64) == -1) {
		xasprintf(cause, "cannot listen on %s: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	main_admin_socket = xstrdup(path);
	atexit(main_remove_admin_socket);
	if (owner != NULL) {
		char *user = xstrdup(owner), *group = strchr(user, ':');
		struct passwd *pw = NULL;
		struct group *gr = NULL;
		if (group != NULL)
			*group++ = '\0';
		if ((*user != '\0' && (pw = getpwnam(user)) == NULL) ||
		    (group != NULL && (gr = getgrnam(group)) == NULL)) {
			xasprintf(cause, "admin_socket_owner: no such %s: %s",
			    gr == NULL && group != NULL && (pw != NULL ||
			    *user == '\0') ? "group" : "user", owner);
			free(user);
			close(fd);
			return -1;
		}
		if (chown(path, pw != NULL ? pw->pw_uid : (uid_t)-1,
		    gr != NULL ? gr->gr_gid : (gid_t)-1) == -1) {
			xasprintf(cause, "cannot give %s to %s: %s", path,
			    owner, strerror(errno));
			free(user);
			close(fd);
			return -1;
		}
		free(user);
	}
	return fd;
}

/* True when a and b load the same plugins from the same place. */
static bool
main_plugins_same(const struct config *a, const struct config *b)
{
	if (a->plugins.n != b->plugins.n)
		return false;
	for (size_t i = 0; i < a->plugins.n; i++) {
		if (strcmp(a->plugins.v[i], b->plugins.v[i]) != 0)
			return false;
	}
	if ((a->plugin_dir == NULL) != (b->plugin_dir == NULL) ||
	    (a->plugin_dir != NULL && strcmp(a->plugin_dir, b->plugin_dir) != 0))
		return false;
	return true;
}

#define MAIN_SWAP(a, b)                                                      \
	do {                                                                 \
		__typeof__(a) main_tmp_ = (a);                                \
		(a) = (b);                                                   \
		(b) = main_tmp_;                                             \
	} while (0)

/* Moves the running values of restart-only settings into next (next's
 * own go to running, which is freed). */
static void
main_keep_running(struct config *next, struct config *running)
{
	MAIN_SWAP(next->listen, running->listen);
	MAIN_SWAP(next->port, running->port);
	MAIN_SWAP(next->admin_listen, running->admin_listen);
	MAIN_SWAP(next->admin_socket_mode, running->admin_socket_mode);
	MAIN_SWAP(next->admin_socket_owner, running->admin_socket_owner);
	MAIN_SWAP(next->http_timeout, running->http_timeout);
	MAIN_SWAP(next->max_header_bytes, running->max_header_bytes);
	MAIN_SWAP(next->plugins, running->plugins);
	MAIN_SWAP(next->plugin_dir, running->plugin_dir);
	MAIN_SWAP(next->state_dir, running->state_dir);
	MAIN_SWAP(next->accounts, running->accounts);
	MAIN_SWAP(next->state_store, running->state_store);
	/* libmicrohttpd's socket cap was fixed at start. */
	if (next->max_connections > main_start_max_connections) {
		log_warn("core", "reload: max_connections can rise above %u "
		    "only on restart", main_start_max_connections);
		next->max_connections = main_start_max_connections;
	}
}

static void main_server_event(enum hook_event ev);

/* Hands cause (taken) to whoever asked for the result, or frees it. */
static void
main_reload_result(char **result, char *cause)
{
	if (result != NULL)
		*result = cause;
	else
		free(cause);
}

/* Re-reads the configuration; applies it only when all of it is good.
 * Returns 0, or -1 with *result (allocated) saying why nothing changed;
 * warnings about restart-only settings do not fail it. */
static int
main_reload(char **result)
{
	struct config next, old;
	char *cause = NULL;

	notify_reloading();
	config_defaults(&next);
	if (main_config_path != NULL &&
	    config_load(&next, main_config_path, &cause) == -1) {
		log_error("core", "reload: %s; keeping the running "
		    "configuration", cause);
		main_reload_result(result, cause);
		config_free(&next);
		notify_send("READY=1\nSTATUS=reload failed");
		return -1;
	}
	if (main_listen_arg != NULL) {
		free(next.listen);
		next.listen = xstrdup(main_listen_arg);
	}
	if (main_port_arg != -1)
		next.port = (int)main_port_arg;
	if (next.web_root == NULL)
		next.web_root = xstrdup(cfg->web_root);

	/* What only a restart can change. */
	if (strcmp(next.listen, cfg->listen) != 0 || next.port != cfg->port)
		log_warn("core", "reload: the listen address changes only on "
		    "restart");
	if ((next.admin_listen == NULL) != (cfg->admin_listen == NULL) ||
	    (next.admin_listen != NULL &&
	    strcmp(next.admin_listen, cfg->admin_listen) != 0))
		log_warn("core", "reload: admin_listen changes only on restart");
	if (next.http_timeout != cfg->http_timeout ||
	    next.max_header_bytes != cfg->max_header_bytes)
		log_warn("core", "reload: http_timeout and max_header_bytes "
		    "change only on restart");
	if (!main_plugins_same(&next, cfg))
		log_warn("core", "reload: plugins and plugin_dir change only "
		    "on restart");
	if (next.max_frame_bytes != cfg->max_frame_bytes)
		log_info("core", "reload: max_frame_bytes applies to new "
		    "connections");

	/* Scripts are part of the configuration: a script that does not
	 * load refuses the whole reload. */
	if (script_reload_prepare(&next, &cause) == -1) {
		log_error("core", "reload: %s; keeping the running "
		    "configuration", cause);
		main_reload_result(result, cause);
		config_free(&next);
		notify_send("READY=1\nSTATUS=reload failed");
		return -1;
	}

	/* Restart-only settings keep their running values, so that cfg
	 * always says what the server does. */
	main_keep_running(&next, &main_config);

	old = main_config;
	main_config = next;
	config_free(&old);
	http_set_proxies(&cfg->trusted_proxies, &cause);
	log_level = cfg->log_level;
	if (log_open(cfg->log_file, cfg->log_syslog,
	    strcmp(cfg->log_format, "json") == 0, &cause) == -1) {
		log_error("core", "reload: %s", cause);
		free(cause);
	}
	chat_rooms_configured();
	script_reload_commit();
	/* Plugins see the new plugin_options, then are told. */
	plugin_reload();
	main_server_event(HOOK_RELOAD);
	log_info("core", "reloaded %s", main_config_path ? main_config_path :
	    "the built-in defaults");
	notify_send("READY=1\nSTATUS=serving");
	return 0;
}

static int
main_state_dir(const char *user, char **cause)
{
	struct passwd *pw;

	if (path_mkdirs(cfg->state_dir, cause) == -1)
		return -1;
	if (user != NULL && getuid() == 0 && (pw = getpwnam(user)) != NULL &&
	    chown(cfg->state_dir, pw->pw_uid, pw->pw_gid) == -1)
		log_warn("core", "cannot give %s to %s: %s", cfg->state_dir,
		    user, strerror(errno));
	return 0;
}

static int
main_drop_privileges(const char *user, const char *group, char **cause)
{
	struct passwd *pw = NULL;
	struct group *gr = NULL;
	gid_t gid;

	if (user == NULL && group == NULL)
		return 0;
	if (user != NULL && (pw = getpwnam(user)) == NULL) {
		xasprintf(cause, "--user: no such user: %s", user);
		return -1;
	}
	if (group != NULL && (gr = getgrnam(group)) == NULL) {
		xasprintf(cause, "--group: no such group: %s", group);
		return -1;
	}
	gid = gr != NULL ? gr->gr_gid : pw->pw_gid;
	if (pw != NULL ? initgroups(pw->pw_name, gid) == -1 :
	    setgroups(0, NULL) == -1) {
		xasprintf(cause, "cannot set supplementary groups: %s",
		    strerror(errno));
		return -1;
	}
	if (setgid(gid) == -1 || (pw != NULL && setuid(pw->pw_uid) == -1)) {
		xasprintf(cause, "cannot switch to %s:%s: %s",
		    user ? user : "-", group ? group : "-", strerror(errno));
		return -1;
	}
	/* Make sure root cannot be regained. */
	if (pw != NULL && pw->pw_uid != 0 && setuid(0) == 0) {
		xasprintf(cause, "privileges could be regained after dropping");
		return -1;
	}
	log_info("core", "running as %s:%s", user ? user : "-",
	    group ? group : "-");
	return 0;
}

static void
main_remove_pidfile(void)
{
	if (main_pidfile != NULL)
		unlink(main_pidfile);
}

static int
main_write_pidfile(const char *path, char **cause)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fprintf(f, "%ld\n", (long)getpid()) < 0 ||
	    fclose(f) != 0) {
		xasprintf(cause, "cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Runs the hooks of a server event (start, stop, tick). */
static void
main_server_event(enum hook_event ev)
{
	struct hook_args a = { .event = ev };

	if (!hook_any(ev))
		return;
	hook_run(&a);
	hook_args_free(&a);
}

static void
main_on_tick(struct loop_timer *t)
{
	main_server_event(HOOK_TICK);
	loop_timer_set(t, MAIN_TICK_MS, main_on_tick);
}

/* Tells scripts and plugins once, while clients are still connected. */
static void
main_announce_stop(void)
{
	if (main_stop_announced)
		return;
	main_stop_announced = true;
	loop_timer_cancel(&main_tick_timer);
	main_server_event(HOOK_SERVER_STOP);
}

static void
main_on_signal(struct loop_fd *lfd, uint32_t events)
{
	struct signalfd_siginfo si;

	while (read(lfd->fd, &si, sizeof si) == (ssize_t)sizeof si) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			if (loop_stopping() || main_shutting_down)
				break;
			main_shutting_down = true;
			log_info("core", "%s: closing %u connections",
			    strsignal((int)si.ssi_signo), conn_count());
			notify_send("STOPPING=1");
			main_announce_stop();
			http_quiesce();
			conn_shutdown_all(MAIN_SHUTDOWN_MS);
			if (conn_count() == 0)
				loop_stop();
			break;
		case SIGUSR1:
			log_reopen();
			log_info("core", "log file reopened");
			break;
		case SIGHUP:
			main_reload(NULL);
			break;
		}
	}
}

static int
main_signals(char **cause)
{
	sigset_t set;
	int fd;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd == -1 || loop_fd_add(&main_signal_lfd, fd, EPOLLIN,
	    main_on_signal) == -1) {
		xasprintf(cause, "signalfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Each connection needs a descriptor: take what the hard limit allows. */
static void
main_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    cfg->max_connections + 128 > rl.rlim_cur) {
		unsigned max = rl.rlim_cur > 256 ? (unsigned)rl.rlim_cur - 128 :
		    64;
		log_warn("core", "max_connections %u exceeds the open-file "
		    "limit; using %u", cfg->max_connections, max);
		cfg->max_connections = max;
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "port", required_argument, NULL, 'p' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "user", required_argument, NULL, 'u' },
		{ "group", required_argument, NULL, 'g' },
		{ "pidfile", required_argument, NULL, 'P' },
		{ "plugin-info", required_argument, NULL, 'I' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = NULL, *listen_addr = NULL;
	const char *run_user = NULL, *run_group = NULL, *pidfile = NULL;
	const char *plugin_info_file = NULL;
	long port = -1;
	bool check_only = false;
	char *cause = NULL, *end;
	int ch, listen_fd, bound, admin_fd = -1;
	struct timespec seed;

	while ((ch = getopt_long(argc, argv, "c:l:p:u:g:Vh", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'c':
			config_path = optarg;
			break;
		case 'l':
			listen_addr = optarg;
			break;
		case 'p':
			errno = 0;
			port = strtol(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || port < 0 ||
			    port > 65535) {
				fprintf(stderr, "parleyd: invalid port: %s\n",
				    optarg);
				return 2;
			}
			break;
		case 'C':
			check_only = true;
			break;
		case 'u':
			run_user = optarg;
			break;
		case 'g':
			run_group = optarg;
			break;
		case 'P':
			pidfile = optarg;
			break;
		case 'I':
			plugin_info_file = optarg;
			break;
		case 'V':
			main_version();
			return 0;
		case 'h':
			main_usage(stdout);
			return 0;
		default:
			main_usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "parleyd: unexpected argument: %s\n",
		    argv[optind]);
		main_usage(stderr);
		return 2;
	}

	/* What parleyd creates (the state directory, the history database,
	 * the log and pid files) is not for other users to read, also when
	 * no service manager sets a umask: the caller's umask is kept, with
	 * at least 027 added. */
	umask(umask(027) | 027);

	main_listen_arg = listen_addr;
	main_port_arg = port;
	config_defaults(&main_config);
	cfg = &main_config;
	if (config_path == NULL &&
	    access(PARLEY_SYSCONFDIR "/parley.conf", F_OK) == 0)
		config_path = PARLEY_SYSCONFDIR "/parley.conf";
	if (config_path != NULL &&
	    config_load(&main_config, config_path, &cause) == -1) {
		fprintf(stderr, "parleyd: %s\n", cause);
		free(cause);
		config_free(&main_config);
		return 1;
	}
	main_config_path = config_path;
	if (plugin_info_file != NULL) {
		/* The configuration gives the plugin's options and dir. */
		int rc;
		log_level = cfg->log_level;
		rc = plugin_info(plugin_info_file);
		config_free(&main_config);
		return rc;
	}
	if (check_only && (script_check(&cause) == -1 ||
	    plugin_check_all(&cause) == -1)) {
		fprintf(stderr, "parleyd: %s\n", cause);
		free(cause);
		config_free(&main_config);
		return 1;
	}
	if (check_only) {
		printf("%s: configuration OK\n",
		    config_path ? config_path : "built-in defaults");
		config_free(&main_config);
		return 0;
	}
	if (listen_addr != NULL) {
		free(cfg->listen);
		cfg->listen = xstrdup(listen_addr);
	}
	if (port != -1)
		cfg->port = (int)port;
	if (cfg->web_root == NULL)
		cfg->web_root = path_bundled("public", PARLEY_WWWDIR);
	log_level = cfg->log_level;
	if (log_open(cfg->log_file, cfg->log_syslog,
	    strcmp(cfg->log_format, "json") == 0, &cause) == -1) {
		fprintf(stderr, "parleyd: %s\n", cause);
		return 1;
	}

	clock_gettime(CLOCK_REALTIME, &seed);
	srandom((unsigned)(seed.tv_nsec ^ seed.tv_sec ^ getpid()));

	if (loop_init(&cause) == -1 || main_signals(&cause) == -1)
		fatal("%s", cause);
	main_raise_nofile();
	main_start_max_connections = cfg->max_connections;
	listen_fd = main_listen(cfg->listen, cfg->port, &bound, &cause);
	if (listen_fd == -1)
		fatal("%s", cause);
	if (cfg->admin_listen != NULL && cfg->admin_listen[0] == '/') {
		admin_fd = main_listen_unix(cfg->admin_listen,
		    cfg->admin_socket_mode, cfg->admin_socket_owner, &cause);
		if (admin_fd == -1)
			fatal("admin_listen: %s", cause);
		printf("parleyd: admin listening on unix:%s\n",
		    cfg->admin_listen);
	} else if (cfg->admin_listen != NULL) {
		char *host = xstrdup(cfg->admin_listen), *colon;
		int admin_port, admin_bound;
		colon = strrchr(host, ':');
		if (colon == NULL)
			fatal("admin_listen must be ADDR:PORT: %s",
			    cfg->admin_listen);
		*colon = '\0';
		admin_port = atoi(colon + 1);
		if (host[0] == '[' && host[strlen(host) - 1] == ']') {
			memmove(host, host + 1, strlen(host));
			host[strlen(host) - 1] = '\0';
		}
		admin_fd = main_listen(host, admin_port, &admin_bound, &cause);
		if (admin_fd == -1)
			fatal("admin_listen: %s", cause);
		printf("parleyd: admin listening on http://%s%s%s:%d/\n",
		    strchr(host, ':') ? "[" : "", host,
		    strchr(host, ':') ? "]" : "", admin_bound);
		free(host);
	}
	/* The state directory (history): created before privileges go,
	 * and handed to the user the daemon will run as. */
	if (cfg->state_dir == NULL && path_build_tree() != NULL)
		xasprintf(&cfg->state_dir, "%s/state", path_build_tree());
	else if (cfg->state_dir == NULL)
		cfg->state_dir = xstrdup(PARLEY_STATEDIR);
	if ((cfg->plugins.n > 0 || cfg->accounts ||
		strcmp(cfg->state_store, "memory") != 0) &&
	    main_state_dir(run_user, &cause) == -1)
		fatal("%s", cause);
	/* Sockets are bound: give up root before any script or plugin
	 * runs. */
	if (main_drop_privileges(run_user, run_group, &cause) == -1)
		fatal("%s", cause);
	if (pidfile != NULL && main_write_pidfile(pidfile, &cause) == -1)
		fatal("%s", cause);
	main_pidfile = pidfile;
	atexit(main_remove_pidfile); /* also when a later step fails */
	limit_init();
	metrics_init();
	/* Account names are known before anyone can take a name. */
	if (account_init(&cause) == -1)
		fatal("%s", cause);
	/* The rooms that last, then the configured ones. */
	if (state_init(&cause) == -1 || chat_rooms_restore(&cause) == -1)
		fatal("%s", cause);
	/* Plugins see the configured rooms; a refused one stops us here. */
	if (plugin_load_all(&cause) == -1)
		fatal("%s", cause);
	if (script_init(&cause) == -1)
		fatal("%s", cause);
	loop_before_sleep(conn_flush_pending);
	loop_before_sleep(client_reap);
	loop_before_sleep(room_reap);
	admin_set_reload(main_reload);
	if (http_start(listen_fd, admin_fd, &cause) == -1)
		fatal("%s", cause);
	main_server_event(HOOK_SERVER_START);
	loop_timer_set(&main_tick_timer, MAIN_TICK_MS, main_on_tick);

	log_info("core", "parleyd %s serving %s", PACKAGE_VERSION,
	    cfg->web_root);
	printf("parleyd: listening on http://%s%s%s:%d/\n",
	    strchr(cfg->listen, ':') ? "[" : "", cfg->listen,
	    strchr(cfg->listen, ':') ? "]" : "", bound);
	fflush(stdout);
	notify_send("READY=1\nSTATUS=serving");

	loop_run();

	main_announce_stop();
	log_info("core", "stopped");
	http_stop();
	client_reap();
	account_free();
	/* Clients are gone: a history store flushes what it holds. */
	plugin_unload_all();
	script_free();
	room_free_all();
	history_free_all();
	state_free();
	command_free_all();
	hook_free_all();
	handle_free_all();
	limit_free();
	name_free();
	metrics_free();
	loop_free();
	config_free(&main_config);
	log_close();
	return 0;
}
