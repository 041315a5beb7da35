-- A row inserted into messages is published to the subscribers of "room:<room_id>",
-- restricted to its tenant, once the inserting transaction commits.
CREATE TABLE messages (
    id bigserial PRIMARY KEY,
    tenant_id text NOT NULL,
    room_id text NOT NULL,
    author text NOT NULL,
    text text NOT NULL
);

CREATE FUNCTION messages_publish() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM fraiseql_publish(
        'room:' || NEW.room_id,                       -- channel
        'messagePosted',                              -- event_type
        jsonb_build_object('id', NEW.id::text, 'room_id', NEW.room_id,
                           'author', NEW.author, 'text', NEW.text),   -- data
        NEW.tenant_id                                 -- tenant_id (user_id: none)
    );
    RETURN NEW;
END
$$;

CREATE TRIGGER messages_publish AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_publish();
