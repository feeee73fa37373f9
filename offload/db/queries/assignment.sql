-- name: insert_assigned_lead
-- A new lead and its agent in one round trip: $6 when it is set (an id that is no agent fails
-- on the foreign key), else the next agent in turn, round robin over the agents in id order
-- (NULL when there is none). COALESCE evaluates the turn only when $6 is NULL, so a lead that
-- names its agent takes no turn.
INSERT INTO leads (name, email, phone, property, source, agent_id)
VALUES ($1, $2, $3, $4, $5, coalesce($6::bigint, (
    SELECT id FROM agents
    ORDER BY id
    OFFSET (SELECT (nextval('lead_assignment_turn') - 1) % greatest(count(*), 1) FROM agents)
    LIMIT 1
)))
RETURNING id;
