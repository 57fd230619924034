/* test_sysv_name.c - unit tests of core/sysv's file names: sysv_name_parse
 * and sysv_name_format round trips, and every non-canonical form refused. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "sysv.h"

static void assert_key_round_trip(const char *name, uint32_t want)
{
	key_t key = 0;
	int shmid = -7;
	char buf[SYSV_NAME_MAX];
	cr_assert_eq(sysv_name_parse(name, &key, &shmid), SYSV_NAME_KEY, "%s", name);
	cr_assert_eq((uint32_t)key, want, "%s parsed as 0x%x", name, (uint32_t)key);
	sysv_name_format(buf, key, 12345);
	cr_assert_str_eq(buf, name);
}

static void assert_id_round_trip(const char *name, int want)
{
	key_t key = 0;
	int shmid = -7;
	char buf[SYSV_NAME_MAX];
	cr_assert_eq(sysv_name_parse(name, &key, &shmid), SYSV_NAME_ID, "%s", name);
	cr_assert_eq(shmid, want, "%s parsed as %d", name, shmid);
	sysv_name_format(buf, IPC_PRIVATE, shmid);
	cr_assert_str_eq(buf, name);
}

Test(sysv_name, key_names_round_trip)
{
	assert_key_round_trip("0x0000162e", 0x162e);
	assert_key_round_trip("0x00000001", 1);
	assert_key_round_trip("0xdeadbeef", 0xdeadbeef);
	assert_key_round_trip("0x7fffffff", 0x7fffffff);
	assert_key_round_trip("0x80000000", 0x80000000);
	assert_key_round_trip("0xffffffff", 0xffffffff);
	assert_key_round_trip("0xabcdef09", 0xabcdef09);
}

Test(sysv_name, id_names_round_trip)
{
	assert_id_round_trip("id-0", 0);
	assert_id_round_trip("id-7", 7);
	assert_id_round_trip("id-32769", 32769);
	assert_id_round_trip("id-2147483647", INT32_MAX);
}

Test(sysv_name, format_is_canonical)
{
	char buf[SYSV_NAME_MAX];
	sysv_name_format(buf, (key_t)0x162e, 3);
	cr_assert_str_eq(buf, "0x0000162e", "a key name ignores the shmid");
	sysv_name_format(buf, (key_t)0xABCDEF01, 0);
	cr_assert_str_eq(buf, "0xabcdef01", "hex must be lowercase");
	sysv_name_format(buf, IPC_PRIVATE, 32769);
	cr_assert_str_eq(buf, "id-32769");
	sysv_name_format(buf, IPC_PRIVATE, INT32_MAX);
	cr_assert_str_eq(buf, "id-2147483647");
	cr_assert_lt(strlen(buf), (size_t)SYSV_NAME_MAX);
}

/* Every name a format never produces is refused, so each segment has exactly
 * one name and a lookup cannot alias two files to one segment. */
Test(sysv_name, non_canonical_names_are_refused)
{
	static const char *const bad[] = {
		"",
		"sysv",
		"0",
		"0x",
		"0x0000162E",      /* uppercase hex */
		"0xDEADBEEF",
		"0X0000162e",      /* uppercase x */
		"0x000162e",       /* 7 digits */
		"0x00000162e",     /* 9 digits */
		"0x00000000",      /* IPC_PRIVATE is not a key name */
		"0x0000162g",
		"0x 000162e",
		" 0x0000162e",
		"0x0000162e ",
		"0x0000162e\n",
		"-0x000162e",
		"0x-000162e",
		"0x+000162e",
		"id",
		"id-",
		"id-01",           /* leading zero */
		"id-00",
		"id-x",
		"id-12a",
		"id-1 ",
		"id- 1",
		"id--1",
		"id-+1",
		"id-99999999999",  /* overflow */
		"id-2147483648",   /* INT32_MAX + 1 */
		"id-4294967297",   /* wraps to 1 in 32 bits */
		"ID-1",
		"id_1",
		"1",
		"0x0000162e/x",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		key_t key = 0;
		int shmid = 0;
		cr_expect_eq(sysv_name_parse(bad[i], &key, &shmid), SYSV_NAME_INVALID,
			     "\"%s\" was accepted", bad[i]);
	}
}

Test(sysv_name, rule_sentence_is_there)
{
	cr_assert_gt(strlen(sysv_name_rule), 20);
	cr_assert_not_null(strstr(sysv_name_rule, "0x"));
	cr_assert_not_null(strstr(sysv_name_rule, "id-"));
}
