/*
 * no-symbol.c: a shared object that is not a parley plugin: it exports
 * no parley_plugin symbol. The server must refuse it.
 */
int parley_not_a_plugin(void);

int
parley_not_a_plugin(void)
{
	return 42;
}
