/*
 * outcome: the one tri-state that everything about delivering mail speaks
 * (STYLE.md §4).
 */
#ifndef MXRELAY_OUTCOME_H
#define MXRELAY_OUTCOME_H

enum outcome {
	OUTCOME_OK = 0,
	OUTCOME_TEMPFAIL,
	OUTCOME_PERMFAIL,
};

#endif
