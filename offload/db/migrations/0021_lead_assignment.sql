-- Leads from POST /leads that name no agent go to the agents in turn (round robin in id
-- order, docs/api.md): this sequence is the turn. A sequence, so concurrent requests never
-- wait on each other for it.
CREATE SEQUENCE lead_assignment_turn;
