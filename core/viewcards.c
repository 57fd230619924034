/* viewcards.c - the table of synthesized view cards; see viewcards.h. */
#include "viewcards.h"

#include <string.h>

static const char *const synthesized[] = {
	VIEW_CARD_SHMNAME, VIEW_CARD_CNT0, VIEW_CARD_CNT1, VIEW_CARD_DATE, VIEW_CARD_DATE_OBS,
	VIEW_CARD_TORN,
};

int view_card_synthesized(const char *name)
{
	for (size_t i = 0; i < sizeof synthesized / sizeof synthesized[0]; i++)
		if (strcmp(name, synthesized[i]) == 0)
			return 1;
	return 0;
}
