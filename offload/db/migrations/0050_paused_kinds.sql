-- Job kinds an operator paused (`offload pause KIND`): their activities check this table
-- before each attempt and stand down while their kind is here.
CREATE TABLE paused_kinds (
    kind      text PRIMARY KEY,
    reason    text NOT NULL DEFAULT '',
    paused_at timestamptz NOT NULL DEFAULT now()
);
