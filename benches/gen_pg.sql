-- benches/gen_pg.sql: a generated "shop" database for benches/pg_vs_seed.sh.
--
--   psql -v ON_ERROR_STOP=1 -v scale=1 -d DB -f benches/gen_pg.sql
--
-- scale=1 gives about 1.2 GB (pg_database_size): 100k customers, 1M orders,
-- 2M events (20k products) with text, jsonb, numeric and timestamptz columns,
-- NULLs, two foreign keys, a view and 12 indexes (btree, unique, partial, GIN).
-- scale may be fractional (0.01 for a quick smoke test).
-- Deterministic: setseed(0.42) before each table. Tables are created and
-- filled in one transaction each, so with wal_level = minimal the load skips
-- WAL.
\set ON_ERROR_STOP 1
\timing on
SET client_min_messages = warning;
SET synchronous_commit = off;
SET maintenance_work_mem = '512MB';
SET work_mem = '64MB';
SET max_parallel_maintenance_workers = 2;

DROP TABLE IF EXISTS events, order_items, orders, customers, products CASCADE;

-- Word lists for readable text (names, cities, product words, sentences).
CREATE TEMP TABLE words AS SELECT
  ARRAY['Ada','Alan','Grace','Linus','Margaret','Dennis','Barbara','Ken','Edsger','Frances',
        'John','Radia','Donald','Sophie','Tim','Anita','Guido','Hedy','Niklaus','Katherine',
        'Bjarne','Joan','Leslie','Shafi','Yukihiro','Lynn','Brian','Mary','Robert','Elena'] AS first,
  ARRAY['Lovelace','Turing','Hopper','Torvalds','Hamilton','Ritchie','Liskov','Thompson',
        'Dijkstra','Allen','McCarthy','Perlman','Knuth','Wilson','Berners-Lee','Borg','van Rossum',
        'Lamarr','Wirth','Johnson','Stroustrup','Clarke','Lamport','Goldwasser','Matsumoto',
        'Conway','Kernighan','Keller','Tarjan','Garcia'] AS last,
  ARRAY['Lisbon','Oslo','Nairobi','Osaka','Lima','Quebec','Dublin','Porto','Tallinn','Perth',
        'Austin','Leeds','Turin','Gdansk','Accra','Hanoi','Cusco','Malmo','Bergen','Utrecht'] AS city,
  ARRAY['DE','FR','US','GB','JP','BR','KE','PT','NO','PL','NL','CA','AU','IT','SE'] AS country,
  ARRAY['steel','oak','linen','ceramic','wool','copper','glass','bamboo','cotton','leather',
        'walnut','marble','canvas','brass','cedar','slate','silk','clay','pine','felt'] AS material,
  ARRAY['lamp','chair','mug','scarf','table','shelf','bowl','jacket','basket','clock',
        'vase','desk','blanket','kettle','stool','rug','bag','frame','pillow','bench'] AS thing,
  ARRAY['the','order','arrived','late','but','well','packed','and','customer','asked',
        'for','a','refund','on','second','item','shipping','label','was','printed',
        'twice','courier','left','parcel','at','front','door','replacement','sent','today',
        'payment','declined','retry','succeeded','after','address','change','warehouse',
        'picked','from','shelf','B4','note','gift','wrap','requested','invoice','emailed'] AS vocab,
  ARRAY['page_view','add_to_cart','remove_from_cart','checkout_started','payment_ok',
        'payment_failed','search','login','logout','review_posted'] AS kind,
  ARRAY['pending','paid','shipped','delivered','cancelled','refunded'] AS status;

-- A sentence of n words from the vocabulary.
CREATE OR REPLACE FUNCTION pg_temp.sentence(n int) RETURNS text LANGUAGE sql VOLATILE AS $$
  SELECT string_agg(w.vocab[1 + floor(random() * array_length(w.vocab, 1))::int], ' ')
  FROM words w, generate_series(1, n)
$$;

SELECT setseed(0.42);
BEGIN;
CREATE TABLE products (
  id          integer PRIMARY KEY,
  sku         text NOT NULL UNIQUE,
  name        text NOT NULL,
  description text NOT NULL,
  price       numeric(10,2) NOT NULL,
  attributes  jsonb NOT NULL,
  created_at  timestamptz NOT NULL
);
INSERT INTO products
SELECT i,
       'SKU-' || lpad(i::text, 7, '0'),
       initcap(w.material[1 + i % 20] || ' ' || w.thing[1 + (i / 20) % 20]) || ' No. ' || i,
       pg_temp.sentence(12 + i % 20),
       round((2 + random() * 498)::numeric, 2),
       jsonb_build_object('color', (ARRAY['red','green','blue','black','white','ochre'])[1 + i % 6],
                          'weight_g', 50 + i % 4000,
                          'tags', jsonb_build_array(w.material[1 + i % 20], w.thing[1 + (i / 20) % 20]),
                          'in_stock', i % 7 <> 0),
       timestamptz '2019-01-01 00:00+00' + (i * interval '7 minutes')
FROM words w, generate_series(1, 20000) AS i;
COMMIT;

SELECT setseed(0.42);
BEGIN;
CREATE TABLE customers (
  id          bigint PRIMARY KEY,
  email       text NOT NULL UNIQUE,
  full_name   text NOT NULL,
  city        text NOT NULL,
  country     char(2) NOT NULL,
  balance     numeric(12,2) NOT NULL,
  preferences jsonb NOT NULL,
  created_at  timestamptz NOT NULL,
  last_login  timestamptz
);
INSERT INTO customers
SELECT i,
       lower(w.first[1 + i % 30] || '.' || w.last[1 + (i / 30) % 30]) || i || '@example.' ||
         (ARRAY['com','org','net','io'])[1 + i % 4],
       w.first[1 + i % 30] || ' ' || w.last[1 + (i / 30) % 30],
       w.city[1 + (i * 7) % 20],
       w.country[1 + (i * 11) % 15],
       round((random() * 10000 - 2000)::numeric, 2),
       jsonb_build_object('newsletter', i % 3 = 0, 'language', (ARRAY['en','de','fr','pt','ja'])[1 + i % 5],
                          'theme', CASE WHEN i % 2 = 0 THEN 'dark' ELSE 'light' END,
                          'score', round((random() * 100)::numeric, 3)),
       timestamptz '2018-01-01 00:00+00' + random() * interval '2000 days',
       CASE WHEN i % 10 = 0 THEN NULL
            ELSE timestamptz '2024-01-01 00:00+00' + random() * interval '300 days' END
FROM words w, generate_series(1, (100000 * :scale)::bigint) AS i;
COMMIT;

SELECT setseed(0.42);
BEGIN;
CREATE TABLE orders (
  id          bigint PRIMARY KEY,
  customer_id bigint NOT NULL,
  status      text NOT NULL,
  total       numeric(12,2) NOT NULL,
  currency    char(3) NOT NULL,
  shipping    jsonb NOT NULL,
  note        text,
  placed_at   timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL
);
INSERT INTO orders
SELECT i,
       1 + (hashint8(i) & 2147483647) % (100000 * :scale)::bigint,
       w.status[1 + floor(random() * 6)::int],
       round((5 + random() * 995)::numeric, 2),
       (ARRAY['EUR','USD','GBP','JPY'])[1 + i % 4],
       jsonb_build_object('city', w.city[1 + i % 20], 'country', w.country[1 + i % 15],
                          'street', (1 + i % 300) || ' ' || w.last[1 + i % 30] || ' Street',
                          'method', (ARRAY['standard','express','pickup'])[1 + i % 3],
                          'weight_g', 100 + (i * 37) % 9000),
       CASE WHEN i % 4 = 0
            THEN w.vocab[1 + i % 48] || ' ' || w.vocab[1 + (i / 7) % 48] || ' ' || w.vocab[1 + (i / 3) % 48]
                 || ' ' || w.vocab[1 + (i / 11) % 48] || ' ' || w.vocab[1 + (i / 5) % 48]
            END,
       timestamptz '2020-01-01 00:00+00' + (i * interval '47 seconds'),
       timestamptz '2020-01-01 00:00+00' + (i * interval '47 seconds') + random() * interval '9 days'
FROM words w, generate_series(1, (1000000 * :scale)::bigint) AS i;
COMMIT;

SELECT setseed(0.42);
BEGIN;
CREATE TABLE events (
  id          bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  customer_id bigint NOT NULL,
  order_id    bigint,
  kind        text NOT NULL,
  payload     jsonb NOT NULL,
  amount      numeric(12,2),
  user_agent  text NOT NULL,
  occurred_at timestamptz NOT NULL
);
INSERT INTO events (id, customer_id, order_id, kind, payload, amount, user_agent, occurred_at)
SELECT i,
       1 + (hashint8(i * 3) & 2147483647) % (100000 * :scale)::bigint,
       CASE WHEN i % 3 = 0 THEN 1 + (hashint8(i) & 2147483647) % (1000000 * :scale)::bigint END,
       w.kind[1 + (i * 13) % 10],
       jsonb_build_object('session', md5(i::text),
                          'path', '/' || w.thing[1 + i % 20] || 's/' || (i % 20000),
                          'product_id', 1 + (i * 7) % 20000,
                          'referrer', (ARRAY['google','newsletter','direct','partner','ads'])[1 + i % 5],
                          'ms', (random() * 2500)::int,
                          'message', w.vocab[1 + i % 48] || ' ' || w.vocab[1 + (i / 3) % 48] || ' ' ||
                                     w.vocab[1 + (i / 17) % 48] || ' ' || w.vocab[1 + (i / 101) % 48]),
       CASE WHEN i % 5 = 0 THEN round((random() * 300)::numeric, 2) END,
       (ARRAY['Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
              'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
              'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
              'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148',
              'curl/8.5.0'])[1 + (i * 7) % 5],
       timestamptz '2023-01-01 00:00+00' + (i * interval '6 seconds') + random() * interval '5 seconds'
FROM words w, generate_series(1, (2000000 * :scale)::bigint) AS i;
COMMIT;

-- Constraints and indexes after the load (as a restore would build them).
ALTER TABLE orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id);
ALTER TABLE events ADD CONSTRAINT events_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id);
CREATE INDEX orders_customer_placed_idx ON orders (customer_id, placed_at);
CREATE INDEX orders_open_idx ON orders (updated_at) WHERE status IN ('pending', 'paid');
CREATE INDEX events_customer_idx ON events (customer_id);
CREATE INDEX events_occurred_idx ON events (occurred_at);
CREATE INDEX events_kind_idx ON events (kind, occurred_at);
CREATE INDEX products_attributes_gin ON products USING gin (attributes);
CREATE VIEW customer_totals AS
  SELECT c.id, c.email, count(o.id) AS orders, coalesce(sum(o.total), 0) AS spent
  FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.id, c.email;
SELECT setval(pg_get_serial_sequence('events', 'id'), (SELECT max(id) FROM events));
VACUUM (ANALYZE) products, customers, orders, events;

SELECT pg_size_pretty(pg_database_size(current_database())) AS database_size,
       pg_database_size(current_database()) AS database_bytes;
