-- name: agent_exists
SELECT EXISTS (SELECT 1 FROM agents WHERE id = $1);

-- name: next_agent_in_turn
-- The next agent in turn: round robin over the agents in id order (none when there is none).
SELECT id FROM agents
ORDER BY id
OFFSET (SELECT (nextval('lead_assignment_turn') - 1) % greatest(count(*), 1) FROM agents)
LIMIT 1;
