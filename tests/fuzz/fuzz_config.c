/*
 * fuzz_config.c: libFuzzer target for the configuration reader. Any input
 * must either load, with every value inside its range, or fail with a
 * cause that names the file, within the sandbox's memory and instruction
 * limits, without leaks or undefined behaviour. From a configured tree:
 *
 *   clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -I. -Isrc $(pkg-config --cflags lua5.4 jansson) \
 *       src/config.c src/config-table.c src/log.c src/xmalloc.c \
 *       src/utf8.c tests/fuzz/fuzz_config.c -o fuzz_config \
 *       $(pkg-config --libs lua5.4 jansson)
 *   ./fuzz_config -dict=tests/fuzz/config.dict tests/fuzz/corpus/config
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c;
	char *cause = NULL;

	config_defaults(&c);
	if (config_load_string(&c, "fuzz.conf", (const char *)data, size,
	    &cause) == 0) {
		/* What loaded must satisfy the limits the table promises. */
		PARLEY_ASSERT(cause == NULL);
		PARLEY_ASSERT(c.port >= 0 && c.port <= 65535);
		PARLEY_ASSERT(c.max_message_bytes < c.max_frame_bytes);
		PARLEY_ASSERT(c.listen != NULL && c.server_name != NULL);
		for (size_t i = 0; i < c.rooms.n; i++) {
			size_t len = strlen(c.rooms.v[i]);
			PARLEY_ASSERT(len >= 1 && len <= 64);
			PARLEY_ASSERT(utf8_valid(c.rooms.v[i], len));
		}
	} else {
		PARLEY_ASSERT(cause != NULL &&
		    strncmp(cause, "fuzz.conf", 9) == 0);
		free(cause);
	}
	config_free(&c);
	return 0;
}
