/* viewcards.h - the header cards a stream's FITS view makes from the
 * stream's state (its name, counters and times) rather than from its
 * keywords. view_stream_header writes them; the loader skips them, so a
 * file saved from a view loads back without them turning into keywords.
 * A view that synthesizes a new card names it here, in the one table. */
#ifndef SHMFS_VIEWCARDS_H
#define SHMFS_VIEWCARDS_H

#define VIEW_CARD_SHMNAME "SHMNAME"   /* the stream's name */
#define VIEW_CARD_CNT0 "CNT0"         /* its frame counter */
#define VIEW_CARD_CNT1 "CNT1"         /* the last slice written */
#define VIEW_CARD_DATE "DATE"         /* its write time */
#define VIEW_CARD_DATE_OBS "DATE-OBS" /* its acquisition time */
#define VIEW_CARD_TORN "SHMTORN"      /* why the frame is not a whole one */

/* Whether NAME (a keyword name, upper case) is one of those cards. */
int view_card_synthesized(const char *name);

#endif
