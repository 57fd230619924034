/* test_typed.c - user-given layouts (user.shmfs.type/shape/offset). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "typed.h"

Test(typed, parses_and_fits)
{
	struct typed_layout l;
	char why[160];
	cr_assert_eq(typed_parse("float32", "512,512", NULL, 512 * 512 * 4, &l, why, sizeof why), 0,
		     "%s", why);
	cr_assert_eq(l.type, ELEM_F32);
	cr_assert_eq(l.naxis, 2);
	cr_assert_eq(l.dims[0], 512);
	cr_assert_eq(l.bytes, 512 * 512 * 4);
	cr_assert_eq(typed_parse("DCOMPLEX", "10", "16", 16 + 160, &l, why, sizeof why), 0, "%s", why);
	cr_assert_eq(l.type, ELEM_C128);
	cr_assert_eq(l.offset, 16);
	char shape[64];
	cr_assert_eq(typed_parse("uint8", "2,3,4,5,6,7,8,9", NULL, 1 << 20, &l, why, sizeof why), 0);
	typed_shape_text(&l, shape, sizeof shape);
	cr_assert_str_eq(shape, "2,3,4,5,6,7,8,9");
}

Test(typed, refusals)
{
	struct typed_layout l;
	char why[160];
	cr_assert_eq(typed_parse(NULL, "5", NULL, 100, &l, why, sizeof why), -ENODATA);
	cr_assert_eq(typed_parse("float32", NULL, NULL, 100, &l, why, sizeof why), -ENODATA);
	cr_assert_eq(typed_parse("float33", "5", NULL, 100, &l, why, sizeof why), -EINVAL);
	cr_assert_eq(typed_parse("float32", "512,513", NULL, 512 * 512 * 4, &l, why, sizeof why),
		     -EINVAL);
	cr_assert(strstr(why, "needs more"), "%s", why);
	cr_assert_eq(typed_parse("float32", "1", "18446744073709551615", 100, &l, why, sizeof why),
		     -EINVAL);
	cr_assert_eq(typed_parse("float32", "0", NULL, 100, &l, why, sizeof why), -EINVAL);
	cr_assert_eq(typed_parse("float32", "4294967296,4294967296,4294967296", NULL, 100, &l, why,
				 sizeof why), -EINVAL);
	cr_assert_eq(typed_parse("float32", "1,2,3,4,5,6,7,8,9", NULL, 1 << 20, &l, why, sizeof why),
		     -EINVAL);
	cr_assert_eq(typed_parse("float32", "5;", NULL, 100, &l, why, sizeof why), -EINVAL);
	cr_assert_eq(typed_parse("float32", "5", "-1", 100, &l, why, sizeof why), -EINVAL);
}
