/*
 * outcome: the one tri-state that everything about delivering mail speaks
 * (ARCHITECTURE.md).
 */
#ifndef MXRELAY_OUTCOME_H
#define MXRELAY_OUTCOME_H

enum outcome {
	OUTCOME_OK = 0,
	OUTCOME_TEMPFAIL,
	OUTCOME_PERMFAIL,
};

#endif
